"""`talkface batch`: many file jobs from a JSONL file, in a local process pool or on a Ray cluster."""
