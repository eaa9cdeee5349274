"""PyAV clip decoding: seek + partial decode equals decode-all, index mapping, lengths, bad files."""

import numpy as np
import pytest

from jepa_lit.data import decode as D
from jepa_lit.data.fixtures import write_video


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """One 40-frame video per container (keyframe every 8 frames) plus the fixture tree's videos."""
    root = tmp_path_factory.mktemp("decode")
    out = {
        ext: write_video(root / f"v{ext}", 40, fps=fps, gop=8)
        for ext, fps in ((".avi", 25), (".webm", 12), (".mp4", 30))
    }
    return root, out


def red_index(frame: np.ndarray) -> float:
    """Fixture frames have red = 20 + 6 t: recover t from a decoded frame."""
    return (frame[..., 0].mean() - 20) / 6


@pytest.mark.parametrize("ext", [".avi", ".webm", ".mp4"])
def test_seek_decoding_matches_decode_all(videos, ext):
    _, paths = videos
    full = D.decode_all(paths[ext])
    assert full.shape == (40, 48, 64, 3) and full.dtype == np.uint8
    rng = np.random.default_rng(0)
    cases = [np.arange(16) + 20, np.arange(0, 32, 2) + 7, [39], [0], [33, 2, 2, 17]]
    cases += [rng.integers(0, 40, 10) for _ in range(5)]
    for idx in cases:
        for gap in (48, 3):  # one seek / a seek per run
            clip = D.read_frames(paths[ext], idx, seek_gap=gap)
            np.testing.assert_array_equal(clip.frames, full[np.asarray(idx)])
            assert clip.num_frames_seen is None


@pytest.mark.parametrize("ext", [".avi", ".webm", ".mp4"])
def test_frame_index_from_pts_any_fps(videos, ext):
    _, paths = videos
    clip = D.read_frames(paths[ext], [3, 10, 31]).frames
    assert [round(red_index(f)) for f in clip] == [3, 10, 31]


def test_past_the_end_repeats_last_frame_and_reports_length(videos):
    _, paths = videos
    clip = D.read_frames(paths[".mp4"], [38, 39, 40, 55])
    full = D.decode_all(paths[".mp4"])
    assert clip.num_frames_seen == 40
    for f in clip.frames[1:]:
        np.testing.assert_array_equal(f, full[39])


def test_count_frames_header_and_demux(videos):
    _, paths = videos
    for ext in (".avi", ".mp4", ".webm"):
        assert D.count_frames(paths[ext]) == 40
    container = D.open_video(paths[".webm"])
    assert D.header_frame_count(container) is None  # WebM has no frame count: demuxed instead
    assert D.count_frames(container) == 40
    # after demuxing to EOF the container still decodes (decode_frames seeks)
    assert D.decode_frames(container, [0, 5]).frames.shape[0] == 2
    container.close()


def test_bad_files_name_file_and_reason(tmp_path):
    zero = tmp_path / "zero.mp4"
    zero.write_bytes(b"")
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(bytes(range(256)) * 8)
    for path, reason in ((zero, "zero-byte"), (garbage, "cannot open"), (tmp_path / "gone.webm", "not found")):
        with pytest.raises(D.VideoDecodeError) as info:
            D.read_frames(path, [0])
        assert str(path) in str(info.value) and reason in info.value.reason
    with pytest.raises(ValueError):
        D.decode_frames(None, [])


def test_truncated_webm_decodes_what_is_there(tmp_path):
    path = write_video(tmp_path / "t.webm", 40, fps=12)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    clip = D.read_frames(path, [0, 39])
    assert clip.num_frames_seen is not None and clip.num_frames_seen < 40


def test_estimated_frame_count_needs_no_demux_pass_for_webm(tmp_path):
    """WebM has no header frame count: the dataset estimates it from duration x fps instead of
    demuxing the whole file before decoding a clip."""
    from jepa_lit.data.decode import count_frames, estimated_frame_count, header_frame_count, open_video
    from jepa_lit.data.fixtures import write_video

    path = write_video(tmp_path / "v.webm", 40, fps=12)
    container = open_video(str(path))
    try:
        assert header_frame_count(container) is None
        assert estimated_frame_count(container) == count_frames(str(path)) == 40
    finally:
        container.close()
