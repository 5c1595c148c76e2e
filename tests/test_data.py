"""Dataset loading (official layouts written in tmp dirs), subsets, and VideoDataset."""

from __future__ import annotations

import io
import json
import logging
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from ezclip_cli.data.datasets import list_datasets, load_split
from ezclip_cli.data.video_lists import (
    VideoList,
    kshot_subset,
    load_folder_dataset,
    load_list_file,
    restrict_classes,
    split_base_novel,
)
from ezclip_cli.errors import DatasetError, VideoError
from ezclip_cli.train import dataset as video_dataset
from ezclip_cli.train.dataset import VideoDataset, collate_videos
from ezclip_cli.train.defaults import DIRECTION_SENSITIVE_DATASETS
from ezclip_cli.video.transforms import sample_clip_augmentation
from tests.helpers import CLIP_MEAN as MEAN
from tests.helpers import CLIP_STD as STD
from tests.helpers import K_HEADER, put, write_csv

# ---------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def mp4_bytes() -> bytes:
    """A 16x16, 8-frame libx264 mp4, encoded once and copied wherever a video is needed."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width = stream.height = 16
        stream.pix_fmt = "yuv420p"
        for i in range(8):
            image = np.full((16, 16, 3), i * 30, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------- registry


def test_registry_lists_datasets_and_rejects_unknown(tmp_path):
    assert list_datasets() == ["hmdb51", "k400", "k600", "ssv2", "ucf101"]
    with pytest.raises(DatasetError) as e:
        load_split("kinetics", tmp_path, "train")
    assert one_line(e) == "unknown dataset 'kinetics'; available: hmdb51, k400, k600, ssv2, ucf101"
    with pytest.raises(DatasetError, match="unknown split 'validation' for k400; available: train, val, test"):
        load_split("k400", tmp_path, "validation")
    with pytest.raises(DatasetError, match="ucf101 has no fold 4"):
        load_split("ucf101", tmp_path, "test", fold=4)


def test_missing_root_is_one_line(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_split("hmdb51", tmp_path / "nowhere", "test")
    assert "root not found" in one_line(e) and "nowhere" in one_line(e)


# ---------------------------------------------------------------------------- kinetics


@pytest.fixture
def kinetics_root(tmp_path, mp4_bytes) -> Path:
    root = tmp_path / "k400"
    train = [
        ["zumba", "zz1", 0, 10],
        ["abseiling", "ab1", 5, 15],
        ["abseiling", "ab2", 30, 40],
        ["air drumming", "ad1", 1, 11],
        ["zumba", "zz2", 100, 110],
        ["zumba", "gone", 0, 10],
    ]
    write_csv(root / "annotations/train.csv", K_HEADER, [r + ["train"] for r in train])
    val = [["abseiling", "vab", 0, 10], ["zumba", "vzz", 20, 30]]
    write_csv(root / "annotations/validate.csv", K_HEADER, [r + ["val"] for r in val])
    write_csv(
        root / "annotations/test.csv", ["youtube_id", "time_start", "time_end", "split"], [["tt1", 0, 10, "test"]]
    )
    for label, yid, start, end in train[:-1]:  # the last one is a dead link: never downloaded
        put(root / "train" / label / f"{yid}_{start:06d}_{end:06d}.mp4", mp4_bytes)
    for _, yid, start, end in val:  # flat layout
        put(root / "val" / f"{yid}_{start:06d}_{end:06d}.mp4", mp4_bytes)
    put(root / "test" / "tt1_000000_000010.mp4", mp4_bytes)
    return root


def test_kinetics_classes_counts_and_missing(kinetics_root, caplog):
    with caplog.at_level(logging.WARNING, logger="ezclip_cli.data.video_lists"):
        train = load_split("k400", kinetics_root, "train")
    assert train.classes == ("abseiling", "air drumming", "zumba")
    assert len(train.items) == 5 and train.missing == 1
    assert "1 of 6 annotated videos not found" in caplog.text
    assert sorted(label for _, label in train.items) == [0, 0, 1, 2, 2]
    assert (kinetics_root / "train/zumba/zz2_000100_000110.mp4", 2) in train.items
    val = load_split("k400", kinetics_root, "val")
    assert (val.name, val.split, val.classes, val.missing) == ("k400", "val", train.classes, 0)
    assert [(p.name, label) for p, label in val.items] == [("vab_000000_000010.mp4", 0), ("vzz_000020_000030.mp4", 2)]
    assert load_split("k600", kinetics_root, "train").name == "k600"


def test_kinetics_errors(kinetics_root):
    with pytest.raises(DatasetError) as e:
        load_split("k400", kinetics_root, "test")
    assert "test.csv" in one_line(e) and "label" in one_line(e)
    (kinetics_root / "annotations/validate.csv").unlink()
    with pytest.raises(DatasetError) as e:
        load_split("k400", kinetics_root, "val")
    assert one_line(e).startswith("annotation file not found") and "validate.csv" in one_line(e)
    for video in (kinetics_root / "train").rglob("*.mp4"):
        video.unlink()
    with pytest.raises(DatasetError) as e:
        load_split("k400", kinetics_root, "train")
    assert "no videos of k400 train found" in one_line(e) and "6 annotated" in one_line(e)


# ---------------------------------------------------------------------------- ucf101

UCF_CLASSES = ["ApplyEyeMakeup", "Basketball", "YoYo"]


@pytest.fixture
def ucf_root(tmp_path, mp4_bytes) -> Path:
    root = tmp_path / "ucf"
    lists = root / "ucfTrainTestlist"
    put(lists / "classInd.txt", "".join(f"{i + 1} {c}\n" for i, c in enumerate(UCF_CLASSES)))
    for fold in (1, 2, 3):
        train, test = [], []
        for i, name in enumerate(UCF_CLASSES):
            for group in range(1, 8):  # groups 1-2 (fold 1), 3-4, 5-6 are test
                for clip in range(1, 3):
                    entry = f"{name}/v_{name}_g{group:02d}_c{clip:02d}.avi"
                    put(root / "UCF-101" / entry, mp4_bytes)
                    if group in (2 * fold - 1, 2 * fold):
                        test.append(entry + "\n")
                    else:
                        train.append(f"{entry} {i + 1}\n")
        put(lists / f"trainlist0{fold}.txt", "".join(train))
        put(lists / f"testlist0{fold}.txt", "".join(test))
    return root


def test_ucf101_folds_follow_the_official_lists(ucf_root):
    test = load_split("ucf101", ucf_root, "test", fold=1)
    assert test.classes == tuple(UCF_CLASSES)
    assert len(test.items) == 3 * 2 * 2
    assert {p.name.split("_g")[1][:2] for p, _ in test.items} == {"01", "02"}
    assert all(p.parent.name == UCF_CLASSES[label] for p, label in test.items)
    test2 = load_split("ucf101", ucf_root, "test", fold=2)
    assert {p.name.split("_g")[1][:2] for p, _ in test2.items} == {"03", "04"}
    trainval = load_split("ucf101", ucf_root, "trainval", fold=1)
    assert len(trainval.items) == 3 * 5 * 2
    assert not {p for p, _ in trainval.items} & {p for p, _ in test.items}


def test_val_is_a_fixed_hold_out_of_the_train_list(ucf_root):
    trainval = load_split("ucf101", ucf_root, "trainval")
    train = load_split("ucf101", ucf_root, "train")
    val = load_split("ucf101", ucf_root, "val")
    assert len(val.items) == 3  # 10 % of 10 per class
    assert sorted(label for _, label in val.items) == [0, 1, 2]
    assert set(train.items) | set(val.items) == set(trainval.items)
    assert not set(train.items) & set(val.items)
    assert load_split("ucf101", ucf_root, "val").items == val.items


def test_ucf101_unknown_class_folder_names_file_and_line(ucf_root):
    put(ucf_root / "ucfTrainTestlist/testlist01.txt", "YoYo/v_YoYo_g01_c01.avi\nSurf/v_Surf_g01_c01.avi\n")
    with pytest.raises(DatasetError) as e:
        load_split("ucf101", ucf_root, "test")
    assert "testlist01.txt:2: unknown class folder 'Surf'" in one_line(e)


# ---------------------------------------------------------------------------- hmdb51


@pytest.fixture
def hmdb_root(tmp_path, mp4_bytes) -> Path:
    root = tmp_path / "hmdb"
    codes = {  # video -> code per fold 1, 2
        "wave": {"w_a.avi": (1, 2), "w_b.avi": (2, 1), "w_c.avi": (0, 1), "w_d.avi": (1, 0)},
        "brush_hair": {"b_a.avi": (1, 1), "b_b.avi": (2, 2), "b_c.avi": (0, 0)},
    }
    for name, videos in codes.items():
        for fold in (1, 2):
            lines = "".join(f"{video} {code[fold - 1]} \n" for video, code in videos.items())
            put(root / "testTrainMulti_7030_splits" / f"{name}_test_split{fold}.txt", lines)
        for video in videos:
            put(root / "hmdb51" / name / video, mp4_bytes)
    return root


def test_hmdb51_codes_one_train_two_test_zero_unused(hmdb_root):
    def names(split, fold):
        return sorted(p.name for p, _ in load_split("hmdb51", hmdb_root, split, fold=fold).items)

    assert load_split("hmdb51", hmdb_root, "test").classes == ("brush_hair", "wave")
    assert names("trainval", 1) == ["b_a.avi", "w_a.avi", "w_d.avi"]
    assert names("test", 1) == ["b_b.avi", "w_b.avi"]
    assert names("trainval", 2) == ["b_a.avi", "w_b.avi", "w_c.avi"]
    assert names("test", 2) == ["b_b.avi", "w_a.avi"]
    labels = dict((p.name, label) for p, label in load_split("hmdb51", hmdb_root, "test").items)
    assert labels == {"b_b.avi": 0, "w_b.avi": 1}


def test_hmdb51_accepts_videos_directly_under_root(hmdb_root):
    (hmdb_root / "hmdb51").rename(hmdb_root / "moved")
    for folder in (hmdb_root / "moved").iterdir():
        folder.rename(hmdb_root / folder.name)
    test = load_split("hmdb51", hmdb_root, "test")
    assert sorted(p.relative_to(hmdb_root).as_posix() for p, _ in test.items) == ["brush_hair/b_b.avi", "wave/w_b.avi"]


def test_hmdb51_missing_split_file_is_named(hmdb_root):
    (hmdb_root / "testTrainMulti_7030_splits/wave_test_split2.txt").unlink()
    with pytest.raises(DatasetError) as e:
        load_split("hmdb51", hmdb_root, "test", fold=2)
    assert "wave_test_split2.txt" in one_line(e)


# ---------------------------------------------------------------------------- ssv2


@pytest.fixture
def ssv2_root(tmp_path, mp4_bytes) -> Path:
    root = tmp_path / "ssv2"
    labels = {
        "Pushing something from left to right": "1",
        "Holding something next to something": "0",
        "Putting something on a surface": "2",
    }
    put(root / "labels/labels.json", json.dumps(labels))
    train = [
        {
            "id": "11",
            "label": "pushing cup from left to right",
            "template": "Pushing [something] from left to right",
            "placeholders": ["cup"],
        },
        {
            "id": "12",
            "label": "holding pen next to mug",
            "template": "Holding [something] next to [something]",
            "placeholders": ["pen", "mug"],
        },
        {
            "id": "13",
            "label": "putting a box on a surface",
            "template": "Putting [something] on a surface",
            "placeholders": ["a box"],
        },
        {
            "id": "14",
            "label": "putting a box on a surface",
            "template": "Putting [something] on a surface",
            "placeholders": ["a box"],
        },
    ]
    put(root / "labels/something-something-v2-train.json", json.dumps(train))
    put(root / "labels/something-something-v2-validation.json", json.dumps(train[:2]))
    for entry in train[:3]:
        put(root / "20bn-something-something-v2" / f"{entry['id']}.webm", mp4_bytes)
    return root


def test_ssv2_templates_map_to_labels_json(ssv2_root):
    train = load_split("ssv2", ssv2_root, "train")
    assert train.classes == (
        "Holding something next to something",
        "Pushing something from left to right",
        "Putting something on a surface",
    )
    assert [(p.name, label) for p, label in train.items] == [("11.webm", 1), ("12.webm", 0), ("13.webm", 2)]
    assert train.missing == 1
    assert len(load_split("ssv2", ssv2_root, "val").items) == 2
    assert "ssv2" in DIRECTION_SENSITIVE_DATASETS


def test_ssv2_unknown_template_is_an_error(ssv2_root):
    entries = [{"id": "11", "label": "x", "template": "Spinning [something]", "placeholders": ["x"]}]
    put(ssv2_root / "labels/something-something-v2-validation.json", json.dumps(entries))
    with pytest.raises(DatasetError) as e:
        load_split("ssv2", ssv2_root, "val")
    assert "'Spinning something'" in one_line(e) and "labels.json" in one_line(e)


# ---------------------------------------------------------------------------- own data


def test_list_file(tmp_path, mp4_bytes):
    put(tmp_path / "clips/a.mp4", mp4_bytes)
    put(tmp_path / "clips/b c.mp4", mp4_bytes)
    put(tmp_path / "list.txt", "# my clips\n\nclips/a.mp4\tair drumming\nclips/b c.mp4\tzumba\nclips/gone.mp4\tzumba\n")
    videos = load_list_file(tmp_path / "list.txt")
    assert videos.classes == ("air drumming", "zumba")
    assert videos.items == ((tmp_path / "clips/a.mp4", 0), (tmp_path / "clips/b c.mp4", 1))
    assert videos.missing == 1
    put(tmp_path / "spaces.txt", "clips/a.mp4 air drumming\n")
    assert load_list_file(tmp_path / "spaces.txt", classes=["zumba", "air drumming"]).items == (
        (tmp_path / "clips/a.mp4", 1),
    )
    with pytest.raises(DatasetError) as e:
        load_list_file(tmp_path / "list.txt", classes=["air drumming"])
    assert one_line(e) == "list.txt:4: unknown label 'zumba'"


def test_folder_dataset(tmp_path, mp4_bytes):
    put(tmp_path / "run/a.mp4", mp4_bytes)
    put(tmp_path / "run/deeper/b.MKV", mp4_bytes)
    put(tmp_path / "run/notes.txt", "not a video")
    put(tmp_path / "jump/c.avi", mp4_bytes)
    videos = load_folder_dataset(tmp_path)
    assert videos.classes == ("jump", "run")
    assert videos.items == (
        (tmp_path / "jump/c.avi", 0),
        (tmp_path / "run/a.mp4", 1),
        (tmp_path / "run/deeper/b.MKV", 1),
    )


def test_empty_split_is_an_error(tmp_path):
    put(tmp_path / "list.txt", "gone.mp4\tzumba\n")
    with pytest.raises(DatasetError) as e:
        load_list_file(tmp_path / "list.txt")
    assert "no videos of list.txt list found" in one_line(e)
    videos = VideoList("x", "train", ("a", "b"), ((Path("a.mp4"), 0),))
    with pytest.raises(DatasetError, match="no videos of the requested classes"):
        restrict_classes(videos, ["b"])


# ---------------------------------------------------------------------------- subsets


def synthetic(counts: list[int], name: str = "syn") -> VideoList:
    classes = tuple(f"class{i:03d}" for i in range(len(counts)))
    items = tuple((Path(f"{c}/{j}.mp4"), i) for i, (c, n) in enumerate(zip(classes, counts)) for j in range(n))
    return VideoList(name, "train", classes, items)


def test_kshot_subset_sizes_and_determinism(caplog):
    videos = synthetic([20, 20, 3, 16])
    with caplog.at_level(logging.WARNING, logger="ezclip_cli.data.video_lists"):
        subset = kshot_subset(videos, 16, seed=1)
    assert [sum(1 for _, label in subset.items if label == i) for i in range(4)] == [16, 16, 3, 16]
    assert "class002" in caplog.text and "fewer than 16" in caplog.text
    assert kshot_subset(videos, 16, seed=1) == subset
    assert kshot_subset(videos, 16, seed=2).items != subset.items
    assert set(subset.items) <= set(videos.items) and subset.classes == videos.classes
    two = kshot_subset(videos, 2, seed=0)
    assert len(two.items) == 8
    with pytest.raises(DatasetError):
        kshot_subset(videos, 0, seed=0)


@pytest.mark.parametrize("num_classes, base_size", [(51, 26), (101, 51), (174, 87), (400, 200)])
def test_base_novel_halves(num_classes, base_size):
    counts = [random.Random(num_classes).randint(5, 9) for _ in range(num_classes)]
    base, novel = split_base_novel(synthetic(counts))
    assert (len(base), len(novel)) == (base_size, num_classes - base_size)
    index = {f"class{i:03d}": i for i in range(num_classes)}
    assert min(counts[index[c]] for c in base) >= max(counts[index[c]] for c in novel)
    assert list(base) == sorted(base, key=index.get) and list(novel) == sorted(novel, key=index.get)


def test_base_novel_ties_go_to_the_lower_class_index():
    base, novel = split_base_novel(synthetic([5, 7, 5, 5, 5]))
    assert base == ("class000", "class001", "class002") and novel == ("class003", "class004")


def test_restrict_classes_reindexes():
    videos = synthetic([1, 2, 1])
    subset = restrict_classes(videos, ["class002", "class000"])
    assert subset.classes == ("class002", "class000")
    assert subset.items == ((Path("class000/0.mp4"), 1), (Path("class002/0.mp4"), 0))
    with pytest.raises(DatasetError, match="unknown class 'nope'"):
        restrict_classes(videos, ["nope"])


# ---------------------------------------------------------------------------- VideoDataset


def fake_read_clip(path, num_frames, short_side, decoder, rng):
    """Frames by file name: const (one colour), split (left red, right blue), noise, bad."""
    name = Path(path).stem
    h, w = (short_side or 40), (short_side or 40) * 4 // 3
    if name.startswith("bad"):
        raise VideoError(f"{path}: cannot decode")
    if name.startswith("const"):
        return np.broadcast_to(np.array([200, 60, 30], np.uint8), (num_frames, h, w, 3)).copy()
    if name.startswith("split"):
        frames = np.zeros((num_frames, h, w, 3), np.uint8)
        frames[:, :, : w // 2, 0] = 255
        frames[:, :, w // 2 :, 2] = 255
        return frames
    seed = rng.getrandbits(32) if rng is not None else 0
    return np.random.default_rng(seed).integers(0, 256, (num_frames, h, w, 3), dtype=np.uint8)


@pytest.fixture
def fake_reader(monkeypatch):
    monkeypatch.setattr(video_dataset, "_read_clip", fake_read_clip)


def make_dataset(names, train=True, **kwargs) -> VideoDataset:
    videos = VideoList("syn", "train", ("a", "b"), tuple((Path(f"{n}.mp4"), i % 2) for i, n in enumerate(names)))
    options = dict(num_frames=4, image_size=32, mean=MEAN, std=STD, train=train, short_side=40)
    options.update(kwargs)
    return VideoDataset(videos, **options)


def test_eval_item_shape_dtype_and_normalisation(fake_reader):
    item = make_dataset(["const", "noise"], train=False)[0]
    assert item["video"].shape == (4, 3, 32, 32) and item["video"].dtype == torch.float32
    assert (item["label"], item["index"]) == (0, 0)
    expected = (torch.tensor([200, 60, 30]) / 255 - torch.tensor(MEAN)) / torch.tensor(STD)
    assert torch.allclose(item["video"], expected.view(1, 3, 1, 1).expand(4, 3, 32, 32), atol=1e-5)


def test_train_item_shape_and_per_clip_jitter(fake_reader):
    dataset = make_dataset(["const"] * 20)
    changed = 0
    for i in range(len(dataset)):
        video = dataset[i]["video"]
        assert video.shape == (4, 3, 32, 32) and video.dtype == torch.float32
        assert torch.equal(video, video[:1].expand_as(video))  # same colour in every frame
        changed += not torch.allclose(video, make_dataset(["const"], train=False)[0]["video"], atol=1e-3)
    assert changed >= 10  # jitter (p=0.8) or grayscale (p=0.2) actually altered most clips


def test_flip_off_never_flips(fake_reader):
    flipping, fixed = make_dataset(["split"] * 30), make_dataset(["split"] * 30, flip=False)
    flips = 0
    for i in range(30):
        a, b = flipping[i]["video"], fixed[i]["video"]
        if not torch.equal(a, b):
            assert torch.allclose(a, b.flip(-1), atol=1e-5)  # the only difference flip=False makes
            flips += 1
        assert not sample_clip_augmentation(random.Random(i), 40, 53, 32, flip=False).flip
    assert 5 <= flips <= 25


def test_training_samples_depend_on_seed_epoch_index_only(fake_reader):
    dataset = make_dataset(["noise"] * 3, seed=7)
    first = [dataset[i]["video"] for i in range(3)]
    again = pickle.loads(pickle.dumps(make_dataset(["noise"] * 3, seed=7)))
    assert all(torch.equal(first[i], again[i]["video"]) for i in (2, 0, 1))
    assert not torch.equal(first[0], first[1])
    dataset.set_epoch(1)
    assert not torch.equal(dataset[0]["video"], first[0])
    dataset.set_epoch(0)
    assert torch.equal(dataset[0]["video"], first[0])
    assert not torch.equal(make_dataset(["noise"], seed=8)[0]["video"], first[0])


def test_unreadable_video_is_none_and_collate_drops_it(fake_reader):
    dataset = make_dataset(["const", "bad", "noise"])
    assert dataset[1] is None and dataset.skipped == ["bad.mp4"]
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, collate_fn=collate_videos)
    batch = next(iter(loader))
    assert batch["video"].shape == (2, 4, 3, 32, 32)
    assert batch["label"].tolist() == [0, 0] and batch["index"].tolist() == [0, 2]
    assert batch["skipped"] == ["bad.mp4"]
    assert collate_videos([None, dataset[1]]) is None
    assert collate_videos([dataset[0], None])["skipped"] == ["<unknown>"]


# ---------------------------------------------------------------------------- with the real decoder


def test_real_videos_decode_through_a_spawn_worker(kinetics_root, tmp_path):
    train = load_split("k400", kinetics_root, "train")
    put(tmp_path / "empty.mp4", b"")
    broken = VideoList("k400", "train", train.classes, train.items[:1] + ((tmp_path / "empty.mp4", 0),))
    dataset = VideoDataset(broken, num_frames=4, image_size=16, mean=MEAN, std=STD, train=True, short_side=16)
    assert dataset[1] is None
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=2, num_workers=1, collate_fn=collate_videos, multiprocessing_context="spawn"
    )
    batch = next(iter(loader))
    assert batch["video"].shape == (1, 4, 3, 16, 16) and torch.isfinite(batch["video"]).all()
    assert batch["skipped"] == [str(tmp_path / "empty.mp4")]
    assert torch.equal(batch["video"][0], dataset[0]["video"])  # same sample in the worker
    evaluation = VideoDataset(train, num_frames=4, image_size=16, mean=MEAN, std=STD, train=False)
    assert evaluation[0]["video"].shape == (4, 3, 16, 16)
