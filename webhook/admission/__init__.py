"""The admission HTTP path: the app and its request guard, the envelope, the pipeline, the patch check, wire types."""
