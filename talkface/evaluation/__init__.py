"""Measurements of talkface against real material: each module is one `talkface eval` command."""
