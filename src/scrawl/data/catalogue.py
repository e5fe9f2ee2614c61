"""The dataset catalogue: everything Scrawl knows about each dataset, in one table (`DATASETS`).

An entry (`DatasetInfo`) says where a dataset's files live under the data folder, their pinned sizes and
checksums and where to download them, its classes (from `scrawl.labels`), how its images were framed
("mnist", "emnist", or None for a foreign framing that evaluation always redoes), what kind of samples
it holds ("characters"; "lines" for line datasets) and which reader loads it:

* ``idx``: the official IDX files of MNIST and the six EMNIST splits;
* ``resplit``: a fixed, seeded cut of another dataset's split into train and test parts (`Resplit`);
* ``leaf-npz``: LEAF's FEMNIST sample as a numpy ``.npz``.
* ``unipen-npz``: UNIPEN pen-written words as strokes (scrawl.data.lines reads them).
* ``unipen-chars-npz``: UNIPEN isolated characters as strokes, drawn and framed like EMNIST
  (scrawl.data.chars_extra); ``femnist-npz``: NIST forms from EMNIST's training partitions (LEAF shards).

`dataset_info` looks a name up ("EMNIST_ByClass" works too); `framing_of` answers from the entry.
Plain Python: importing this reads no file and imports no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import DataError
from ..labels import ALNUM, BYMERGE_CLASSES, DIGITS, LINE_ALPHABET, UPPER
from ..vision.framing import FRAMINGS

READERS = ("idx", "resplit", "leaf-npz", "unipen-npz", "unipen-chars-npz", "femnist-npz")
KINDS = ("characters", "lines")

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
# NIST's official EMNIST distribution: one zip (~560 MB) whose members are gzip/emnist-<split>-....gz and
# gzip/emnist-<split>-mapping.txt. Its MD5 is 58c8d27c78d21e728a6bc7b3cc06412e (as pinned by other
# loaders); it is not checked here because every extracted member is verified on its own.
EMNIST_MIRRORS = ("https://biometrics.nist.gov/cs_links/EMNIST/",)
EMNIST_ARCHIVE = "gzip.zip"

# SHA-256 and size of every official .gz file.
# MNIST: from /work/shared/data/SOURCES.md (the files match the official MD5s).
# EMNIST: from the Git LFS pointers ("oid sha256:...", "size ...") of the official NIST files stored in
# the GitHub repository aurelienduarte/emnist (gzip/emnist-*.gz). The byclass, bymerge and mnist test files
# were also checked against the real files in the shared data folder.
# The LFS pointers of the two ByMerge TRAIN files could not be found; for those only the MD5 that other
# loaders pin is known (see _MD5), which is what they are verified against.
_SHA256: dict[str, str] = {
    # MNIST
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    # EMNIST balanced
    "emnist-balanced-train-images-idx3-ubyte.gz": "74295e75e4e9fa2c102147460ee7eb763653d5132d883a84fb88932bfb8d2db4",
    "emnist-balanced-train-labels-idx1-ubyte.gz": "b46d41e5156a0a8aaaa4d18979fdd1588850fa8571018acffd5d93b325a7d6ed",
    "emnist-balanced-test-images-idx3-ubyte.gz": "117fc12b015e37ea98bfb2cbba3f77c3782c056cdbd219b87abfc8661d7135db",
    "emnist-balanced-test-labels-idx1-ubyte.gz": "a67cac948379b67270b9a4d0a01c8ec661598accf2f2b1964340b7c83cb175cd",
    # EMNIST byclass
    "emnist-byclass-train-images-idx3-ubyte.gz": "9e21987f03a6eb8b870187e785883ddad96947299587908f1a7ec2ca0f4be5f0",
    "emnist-byclass-train-labels-idx1-ubyte.gz": "f7ef403d48dc18a89dae0d83d11ee69cecb6e1c12c3a961d03712e495c02a8fa",
    "emnist-byclass-test-images-idx3-ubyte.gz": "5ec835bd5d5b1a66378a132e727fef20fe994b3cc666899befcca5ac766f50cd",
    "emnist-byclass-test-labels-idx1-ubyte.gz": "501e305eeeacb093b162592d80e8a2632040872360fa6d85cfcb2200d91ca92a",
    # EMNIST bymerge (train: no SHA-256 found, MD5 only)
    "emnist-bymerge-test-images-idx3-ubyte.gz": "5e5815ec1b522089134435f7c55e75a00960b58414793593ffff23efc0821683",
    "emnist-bymerge-test-labels-idx1-ubyte.gz": "8bda1516255683ba9071e141947ca0c91a911176065cdd6259b0b4d8dc5b5f35",
    # EMNIST digits
    "emnist-digits-train-images-idx3-ubyte.gz": "f7c95004d14d81af89522e67d8f0c781dfb3bd544181c81bfe1eb6b41c35b726",
    "emnist-digits-train-labels-idx1-ubyte.gz": "6638a6ff5fe2eefd9cca2471995b46c82986b8e4b2a70d2f5ce8e05d7edb319e",
    "emnist-digits-test-images-idx3-ubyte.gz": "20ebe43509264f7639d37c835a3f0b009e90b29e00a099a03101abe1644a3f63",
    "emnist-digits-test-labels-idx1-ubyte.gz": "bad1834c45d5988e270b99d43b13edc3fd898f658ffbc2caf2846ef27f7b05b0",
    # EMNIST letters
    "emnist-letters-train-images-idx3-ubyte.gz": "6288f418a917e007bf5fddb823a2dc7a5c6a35031401b93292a539cb12bd881f",
    "emnist-letters-train-labels-idx1-ubyte.gz": "9759af91ea6bccdf07a6040fd085861f2ec88e37f7c3f5760f6feb57106fbe5c",
    "emnist-letters-test-images-idx3-ubyte.gz": "50f0e93d75b99b463e9760b8345866f22587fa2c2fba472730a5ba09c693412d",
    "emnist-letters-test-labels-idx1-ubyte.gz": "924955c31fe7fd809b7303b5c0141282955f4b8390c74cdfd5d80435e0f4b4cb",
    # EMNIST mnist
    "emnist-mnist-train-images-idx3-ubyte.gz": "5f9942f441031c0f1f2e4d162059fd6e19ea808b34c328b6d16cab0ed24c78f2",
    "emnist-mnist-train-labels-idx1-ubyte.gz": "00c6d3c2342fdffb1711e0b5656cac4ce5862d2826399d383a9bac07d612e9f8",
    "emnist-mnist-test-images-idx3-ubyte.gz": "b25640fa9e356c618132f5df347c95ef5bae6d9c2596be1de40f7e0ae1c3eac6",
    "emnist-mnist-test-labels-idx1-ubyte.gz": "bcc5385d38f083dba046f5f756e99b32f5ea7fad122c6243c71c2239873065ca",
}

_SIZES: dict[str, int] = {
    "train-images-idx3-ubyte.gz": 9912422,
    "train-labels-idx1-ubyte.gz": 28881,
    "t10k-images-idx3-ubyte.gz": 1648877,
    "t10k-labels-idx1-ubyte.gz": 4542,
    "emnist-balanced-train-images-idx3-ubyte.gz": 28207740,
    "emnist-balanced-train-labels-idx1-ubyte.gz": 80618,
    "emnist-balanced-test-images-idx3-ubyte.gz": 4714707,
    "emnist-balanced-test-labels-idx1-ubyte.gz": 13504,
    "emnist-byclass-train-images-idx3-ubyte.gz": 173367313,
    "emnist-byclass-train-labels-idx1-ubyte.gz": 491603,
    "emnist-byclass-test-images-idx3-ubyte.gz": 28908322,
    "emnist-byclass-test-labels-idx1-ubyte.gz": 81839,
    "emnist-bymerge-test-images-idx3-ubyte.gz": 28905295,
    "emnist-bymerge-test-labels-idx1-ubyte.gz": 79351,
    "emnist-digits-train-images-idx3-ubyte.gz": 59515779,
    "emnist-digits-train-labels-idx1-ubyte.gz": 113859,
    "emnist-digits-test-images-idx3-ubyte.gz": 9908519,
    "emnist-digits-test-labels-idx1-ubyte.gz": 19960,
    "emnist-letters-train-images-idx3-ubyte.gz": 30804864,
    "emnist-letters-train-labels-idx1-ubyte.gz": 79283,
    "emnist-letters-test-images-idx3-ubyte.gz": 5039157,
    "emnist-letters-test-labels-idx1-ubyte.gz": 144,  # the test labels are sorted: they compress to almost nothing
    "emnist-mnist-train-images-idx3-ubyte.gz": 14873795,
    "emnist-mnist-train-labels-idx1-ubyte.gz": 29480,
    "emnist-mnist-test-images-idx3-ubyte.gz": 2484884,
    "emnist-mnist-test-labels-idx1-ubyte.gz": 5144,
}

# Fallback for files without a known SHA-256 (MD5s of the official files, as pinned by other loaders).
_MD5: dict[str, str] = {
    "emnist-bymerge-train-images-idx3-ubyte.gz": "4a792d4df261d7e1ba27979573bf53f3",
    "emnist-bymerge-train-labels-idx1-ubyte.gz": "491be69ef99e1ab1f5b7f9ccc908bb26",
}



@dataclass(frozen=True)
class Resplit:
    """How a ``resplit`` dataset is made: `split` of dataset `source` is cut once, by a seeded permutation,
    into a "test" part (`test_fraction` of it) and a "train" part that never mix."""

    source: str
    split: str
    test_fraction: float
    seed: int


@dataclass(frozen=True)
class DatasetInfo:
    """What Scrawl knows about one dataset: its files, their checksums, where to get them, its classes,
    framing and kind, and which reader loads it."""

    name: str
    subdir: str  # folder under the data dir: "mnist", "emnist", ...
    files: Mapping[str, Mapping[str, str]]  # split -> {role: file name}, roles "images"/"labels" for IDX
    classes: tuple[str, ...]  # class index -> character (what the official mapping file says)
    framing: str | None  # how the images were framed: "mnist", "emnist"; None: foreign (always reframed)
    kind: str  # "characters" (one character per image); "lines" for line datasets
    reader: str = "idx"  # which loader reads it: one of READERS
    resplit: Resplit | None = None  # reader "resplit": what it is cut from
    mapping: str | None = None  # EMNIST mapping file name ("label ascii" per line)
    sha256: Mapping[str, str | None] = field(default_factory=dict)  # file name -> hex digest
    sizes: Mapping[str, int | None] = field(default_factory=dict)  # file name -> bytes
    md5: Mapping[str, str | None] = field(default_factory=dict)  # used only where no SHA-256 is known
    mirrors: tuple[str, ...] = ()  # base URLs; file URL = base + file name (or + archive)
    archive: str | None = None  # EMNIST: the files come inside this zip (at each mirror)
    archive_dir: str = ""  # folder of the files inside the archive
    transposed: bool = False  # images are stored transposed (EMNIST): fixed at load time
    label_offset: int = 0  # subtracted from the labels in the file (1 for emnist-letters)
    counts: Mapping[str, int] = field(default_factory=dict)  # split -> official number of samples
    description: str = ""

    def __post_init__(self) -> None:
        if self.reader not in READERS:
            raise ValueError(f"{self.name}: unknown reader {self.reader!r}")
        if self.framing is not None and self.framing not in FRAMINGS:
            raise ValueError(f"{self.name}: unknown framing {self.framing!r}")
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: unknown kind {self.kind!r}")
        if (self.reader == "resplit") != (self.resplit is not None):
            raise ValueError(f"{self.name}: a resplit needs reader 'resplit' and its Resplit, and only it")

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.files)

    @property
    def derived(self) -> bool:
        """True for a dataset made from others' files or outside the official distributions."""
        return self.reader != "idx"

    def all_files(self) -> list[str]:
        """Every file of the dataset (each once): images and labels of each split, then the mapping file."""
        names = [f for split in self.files.values() for f in split.values()]
        return list(dict.fromkeys(names + ([self.mapping] if self.mapping else [])))


def _mnist_info() -> DatasetInfo:
    files = {
        "train": {"images": "train-images-idx3-ubyte.gz", "labels": "train-labels-idx1-ubyte.gz"},
        "test": {"images": "t10k-images-idx3-ubyte.gz", "labels": "t10k-labels-idx1-ubyte.gz"},
    }
    names = [f for s in files.values() for f in s.values()]
    return DatasetInfo(
        name="mnist",
        subdir="mnist",
        files=files,
        classes=tuple(DIGITS),
        framing="mnist",
        kind="characters",
        sha256={f: _SHA256[f] for f in names},
        sizes={f: _SIZES[f] for f in names},
        mirrors=MNIST_MIRRORS,
        counts={"train": 60000, "test": 10000},
        description="MNIST handwritten digits (LeCun, Cortes, Burges): 10 classes, 60,000 train / 10,000 test.",
    )


def _emnist_info(split_name: str, classes: Sequence[str], counts: tuple[int, int], description: str,
                 label_offset: int = 0) -> DatasetInfo:
    prefix = f"emnist-{split_name}"
    files = {
        s: {"images": f"{prefix}-{s}-images-idx3-ubyte.gz", "labels": f"{prefix}-{s}-labels-idx1-ubyte.gz"}
        for s in ("train", "test")
    }
    names = [f for s in files.values() for f in s.values()]
    return DatasetInfo(
        name=prefix,
        subdir="emnist",
        files=files,
        classes=tuple(classes),
        framing="emnist",
        kind="characters",
        mapping=f"{prefix}-mapping.txt",
        sha256={f: _SHA256.get(f) for f in names},
        sizes={f: _SIZES.get(f) for f in names},
        md5={f: _MD5.get(f) for f in names},
        mirrors=EMNIST_MIRRORS,
        archive=EMNIST_ARCHIVE,
        archive_dir="gzip/",
        transposed=True,
        label_offset=label_offset,
        counts={"train": counts[0], "test": counts[1]},
        description=description,
    )


# Datasets derived from the files above, for what can be trained offline (see SOURCES.md of the shared
# data folder). A resplit's source split is cut once, by a fixed seed, into a "train" part and a "test"
# part that never mix; training then holds out its own validation part from "train". Figures on these
# are NOT official EMNIST test results.
def _resplit_info(name: str, source: DatasetInfo, split: str, test_fraction: float, seed: int,
                  description: str) -> DatasetInfo:
    return DatasetInfo(
        name=name,
        subdir=source.subdir,
        files={"train": {}, "test": {}},  # the files are the source's (checked and fetched as its own)
        classes=source.classes,
        framing=source.framing,
        kind=source.kind,
        reader="resplit",
        resplit=Resplit(source=source.name, split=split, test_fraction=test_fraction, seed=seed),
        description=description,
    )


# LEAF's FEMNIST sample (other pixel processing, ink dark on white, grouped by writer): a robustness
# check for character models, not a benchmark. It cannot be downloaded (no official file to pin).
def _leaf_info() -> DatasetInfo:
    npz = "femnist_leaf_sample.npz"
    return DatasetInfo(
        name="femnist-sample",
        subdir="femnist_leaf_sample",
        files={"train": {"arrays": npz}, "test": {"arrays": npz}},
        classes=tuple(ALNUM),
        framing=None,  # LEAF's own resizing: evaluation always reframes it
        kind="characters",
        reader="leaf-npz",
        description="LEAF FEMNIST sample (NIST SD 19 by writer, LEAF's pixel processing): 62 classes; "
                    "a robustness check, not a benchmark.",
    )


def _unipen_words_info() -> DatasetInfo:
    npz = "unipen_words_train.npz"
    return DatasetInfo(
        name="unipen-words", subdir="unipen_words", files={"train": {"arrays": npz}},
        classes=tuple(LINE_ALPHABET), framing=None, kind="lines", reader="unipen-npz",
        # From SOURCES.md of the shared data folder.
        sha256={npz: "9b424a201d189f2e447e38b235c909df102aae965931ea4a476905366669e398"}, sizes={npz: 73300085},
        counts={"train": 85742},
        description="UNIPEN train_r01_v07 words and texts (categories 6-8) as pen strokes, 497 writers; "
                    "CC BY 4.0; validation by writer (scrawl.data.lines).",
    )


# More real characters (issue 15), from the shared data folder's chars_extra/ (SHA-256 and sizes from its
# SOURCES.md). Like the FEMNIST sample they are collections made for Scrawl, with no official file to
# download. UNIPEN's writers are split by scrawl.data.chars_extra.test_writer (about 1 in 10 held out).
def _unipen_chars_info() -> DatasetInfo:
    npz = "unipen_chars_strokes.npz"
    return DatasetInfo(
        name="unipen-chars", subdir="chars_extra", files={"train": {"arrays": npz}, "test": {"arrays": npz}},
        classes=tuple(ALNUM), framing="emnist", kind="characters", reader="unipen-chars-npz",
        sha256={npz: "b74cc36d70f05f1a79d31b16f366ed3d549d86e8436fe275f3792cea23d63a4b"}, sizes={npz: 12031188},
        description="UNIPEN train_r01_v07 isolated digits and letters (categories 1a-1c) as pen strokes, 281 "
                    "writers, drawn with a random pen and framed like EMNIST; test = held-out writers.",
    )


def _femnist_nist_info() -> DatasetInfo:
    npz = "femnist_leaf_no_hsf4.npz"
    return DatasetInfo(
        name="femnist-nist", subdir="chars_extra", files={"train": {"arrays": npz}},
        classes=tuple(ALNUM), framing="emnist", kind="characters", reader="femnist-npz",
        sha256={npz: "5f853993c7e847684fba773704b12e32a30bbd5e5eb612ba232c1ab32b35c102"}, sizes={npz: 21792466},
        counts={"train": 43551},
        description="NIST SD 19 forms of EMNIST's training partitions (LEAF FEMNIST shards, 465 writers, EMNIST's "
                    "test writers removed), re-framed like EMNIST: extra training data for character models.",
    )


def _catalogue() -> dict[str, DatasetInfo]:
    official = [
        _mnist_info(),
        _emnist_info("byclass", ALNUM, (697932, 116323),
                     "EMNIST ByClass: all of NIST SD 19, 62 unbalanced classes (digits, A-Z, a-z)."),
        _emnist_info("bymerge", BYMERGE_CLASSES, (697932, 116323),
                     "EMNIST ByMerge: all of NIST SD 19, 47 unbalanced classes (look-alike lower case merged)."),
        _emnist_info("balanced", BYMERGE_CLASSES, (112800, 18800),
                     "EMNIST Balanced: 47 classes (as ByMerge), 2,400 train / 400 test per class."),
        # Letters: the file labels are 1..26 and each mapping row is "label upper lower"; the class name
        # is the upper-case letter (class 'A' holds both 'A' and 'a').
        _emnist_info("letters", UPPER, (124800, 20800),
                     "EMNIST Letters: 26 classes, upper and lower case merged (named by the capital).",
                     label_offset=1),
        _emnist_info("digits", DIGITS, (240000, 40000),
                     "EMNIST Digits: 10 balanced digit classes, 24,000 train / 4,000 test per class."),
        _emnist_info("mnist", DIGITS, (60000, 10000),
                     "EMNIST MNIST: 10 balanced digit classes, MNIST-sized (NIST SD 19 digits, not MNIST's)."),
    ]
    byclass = official[1]
    derived = [
        _resplit_info("emnist-byclass-testhalf", byclass, "test", 0.2, 20171201,
                      "EMNIST ByClass's test split, re-split once (seed 20171201) into 80% train / 20% test: "
                      "not official EMNIST figures."),
        _leaf_info(),
        _unipen_words_info(),
        _unipen_chars_info(),
        _femnist_nist_info(),
    ]
    return {info.name: info for info in official + derived}


DATASETS: dict[str, DatasetInfo] = _catalogue()


def normalise_name(name: str) -> str:
    """The catalogue key of a dataset name: "EMNIST_ByClass" -> "emnist-byclass"."""
    return str(name).strip().lower().replace("_", "-")


def dataset_info(name: str) -> DatasetInfo:
    """The catalogue entry of a dataset; DataError naming every known dataset if there is none."""
    try:
        return DATASETS[normalise_name(name)]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}") from None


def check_split(info: DatasetInfo, split: str) -> None:
    """DataError unless the dataset has this split."""
    if split not in info.files:
        raise DataError(f"{info.name} has no split {split!r}: choose one of {', '.join(info.files)}")


def framing_of(name: str) -> str | None:
    """The framing a dataset's images were made with ("mnist", "emnist"), None for a foreign one (LEAF's
    FEMNIST resizing, which no model is trained on: evaluation always reframes it). From the catalogue;
    DataError for an unknown dataset."""
    return dataset_info(name).framing
