"""Teachers: proxy codes and pixel decoders for the curriculum."""

from sweettok.teacher.base import Teacher
from sweettok.teacher.vq import VQTeacher, build_teacher

__all__ = ["Teacher", "VQTeacher", "build_teacher"]
