"""The real-data pipeline: real talking-face clips tracked once and cached per clip
(`talkface data prepare`), read back by training and evaluation (talkface.data.cache)."""
