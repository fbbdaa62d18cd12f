"""`talkface eval stability`: flicker on a still head and drift over a render, measured on
talkface's own output."""
import json

import numpy as np
from test_cli_errors import run_cli


def test_still_head_does_not_flicker(face):
    from talkface.evaluation.stability import still_flicker

    result = still_flicker(face, seconds=3.0, seed=0)
    for name in ("no_watermark", "watermarked"):
        skin, background = result[name]["skin"], result[name]["background"]
        # a still head on silence: the skin between frames changes by well under a grey level
        assert skin["mean"] < 0.3 and skin["max"] < 1.0, (name, skin)
        assert background["mean"] < 0.05, (name, background)
        assert skin["share_changed_gt2"] < 0.01, (name, skin)


def test_frame_changes_sees_a_changing_region():
    from talkface.evaluation.stability import frame_changes

    still = np.full((16, 16, 3), 100, np.uint8)
    brighter = still.copy()
    brighter[:8] = 110
    regions = {"top": np.zeros((16, 16), bool), "bottom": np.zeros((16, 16), bool)}
    regions["top"][:8] = True
    regions["bottom"][8:] = True
    out = frame_changes([still, brighter, brighter], regions)
    assert out["top"]["max"] == 10.0 and out["top"]["mean"] == 5.0 and out["top"]["share_changed_gt2"] == 1.0
    assert out["bottom"]["max"] == 0.0 and out["bottom"]["share_changed_gt2"] == 0.0


def test_stability_command_writes_its_figures(tmp_path):
    out = tmp_path / "stability.json"
    code, stdout, err = run_cli("eval", "stability", "--minutes", "0.1", "--every", "1", "--still-seconds", "1",
                                "--no-identity", "--json", str(out))
    assert code == 0, err
    assert "still head" in stdout and "neutral motion" in stdout
    report = json.loads(out.read_text())
    long = report["long"]
    assert long["samples"] == 6 and long["found"] == 6
    assert long["shape_change_iod"] is not None and long["shape_change_iod"] < 0.05
    assert report["still"]["no_watermark"]["background"]["mean"] < 0.05


def test_stability_bad_input_is_one_line(tmp_path):
    code, _, err = run_cli("eval", "stability", "--image", str(tmp_path / "nope.png"))
    assert code == 2 and "image file not found" in err and "Traceback" not in err
    code, _, err = run_cli("eval", "stability", "--minutes", "0")
    assert code == 2 and "--minutes" in err and "Traceback" not in err
