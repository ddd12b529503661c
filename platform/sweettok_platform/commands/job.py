"""``sweettok submit JOB.yaml`` and ``sweettok job status|logs|stop|list``: jobs on a Ray cluster that run as
submitted (``sweettok_platform.submit``). ``ray job submit`` keeps working for people who prefer it."""

from __future__ import annotations

import argparse
import json
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="submit a job spec (train, tokenize, eval, ar train, ar sample) to a Ray cluster",
                       description="Resolve the spec's paths, ship this checkout's code with it and submit it "
                                   "through Ray's job API; prints the job id (and follows its logs with --follow).")
    p.add_argument("spec", help="job spec YAML (jobs/*.yaml)")
    p.add_argument("--address", help="the cluster's dashboard URL (default RAY_ADDRESS or http://127.0.0.1:8265)")
    p.add_argument("--command", dest="job_command", choices=["train", "tokenize", "eval", "ar-train", "ar-sample"],
                   help="what the spec is (default: from its keys)")
    p.add_argument("--no-storage-env", dest="forward_storage", action="store_false",
                   help="forward none of this machine's storage settings (AWS_ENDPOINT_URL, AWS_REGION, "
                        "credentials; by default those that are set go to the job, never printed)")
    p.add_argument("--shared-path", dest="shared_paths", action="append", default=[], metavar="DIR",
                   help="a directory every node of a remote cluster mounts at the same path (repeatable)")
    p.add_argument("--follow", action="store_true", help="print the job's logs until it ends; exit with its status")
    p.set_defaults(func=run_submit)

    j = sub.add_parser("job", help="status, logs, stop or list jobs on a Ray cluster")
    j.add_argument("action", choices=["status", "logs", "stop", "list"])
    j.add_argument("job_id", nargs="?", help="the id `sweettok submit` printed")
    j.add_argument("--address", help="the cluster's dashboard URL (default RAY_ADDRESS or http://127.0.0.1:8265)")
    j.add_argument("--follow", action="store_true", help="logs: keep printing until the job ends")
    j.set_defaults(func=run_job)


def run_submit(args: argparse.Namespace) -> int:
    from sweettok_platform.submit import client, submit

    job_id = submit(args.spec, args.address, command=args.job_command, shared_paths=args.shared_paths,
                    forward_storage=args.forward_storage)
    print(json.dumps({"job_id": job_id}), flush=True)
    if not args.follow:
        return 0
    return follow(client(args.address), job_id)


def follow(jobs, job_id: str) -> int:
    """Print the job's logs as they come; the exit code is 0 when it succeeded."""
    import asyncio

    async def tail() -> None:
        async for lines in jobs.tail_job_logs(job_id):
            print(lines, end="", flush=True)

    asyncio.run(tail())
    while not (status := str(jobs.get_job_status(job_id))).endswith(("SUCCEEDED", "FAILED", "STOPPED")):
        time.sleep(0.5)
    print(f"sweettok job: {job_id} {status.rsplit('.', 1)[-1]}", flush=True)
    return 0 if status.endswith("SUCCEEDED") else 1


def run_job(args: argparse.Namespace) -> int:
    from sweettok_platform.submit import SubmitError, client

    jobs = client(args.address)
    if args.action == "list":
        for info in jobs.list_jobs():
            print(json.dumps({"job_id": info.submission_id, "status": str(info.status).rsplit(".", 1)[-1],
                              "entrypoint": info.entrypoint}))
        return 0
    if not args.job_id:
        raise SubmitError(f"`sweettok job {args.action}` needs the job id")
    if args.action == "status":
        print(str(jobs.get_job_status(args.job_id)).rsplit(".", 1)[-1])
    elif args.action == "stop":
        print(json.dumps({"job_id": args.job_id, "stopped": jobs.stop_job(args.job_id)}))
    elif args.follow:
        return follow(jobs, args.job_id)
    else:
        print(jobs.get_job_logs(args.job_id), end="")
    return 0
