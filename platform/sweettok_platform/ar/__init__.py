"""The generator layer: train a class-conditional AR model on token corpora (Ray Train + DeepSpeed), sample it."""
