"""Golden frames: the rig and renderer draw fixed motion frames on the built-in portraits
as they did when tests/golden/ was written (`python -m talkface.evaluation.golden --write`
rewrites it after an intended change to the picture)."""
from talkface.evaluation.golden import CASES, MIN_PSNR_DB, PORTRAITS, compare


def test_golden_frames_match():
    scores = compare()
    assert len(scores) == sum(len(gp.cases) for gp in PORTRAITS)
    assert all(len(values) == len(CASES[key.split("_", 1)[1]]) for key, values in scores.items())
    worst = {key: round(min(values), 1) for key, values in scores.items()}
    print("worst PSNR per case (dB, 148 = identical):", worst)
    assert min(worst.values()) >= MIN_PSNR_DB, worst
