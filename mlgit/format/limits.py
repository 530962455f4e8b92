"""Every bound git-ml puts on what it reads, in one place (docs/format.md, "Limits").

Everything git-ml reads may be hostile: a teammate's commit, a remote store, an
SSH server, an S3 bucket. Each kind of input has a size (or count, or depth)
limit here; readers refuse input past it with a FormatError before they
allocate for it, so memory stays bounded by the size of legitimate data. The
values are part of the format: a writer MUST NOT produce anything past them.

Pure constants; imports nothing.
"""

from __future__ import annotations

__all__ = [
    "MAX_CLONE_ENTRY_LEN",
    "MAX_CONFIG_LEN",
    "MAX_EMPTY_DIRS",
    "MAX_EVENT_RECORD_LEN",
    "MAX_EXPORT_MANIFEST_LEN",
    "MAX_FILES",
    "MAX_GITIGNORE_LEN",
    "MAX_INDEX_ENTRIES",
    "MAX_INDEX_LEN",
    "MAX_JSON_DEPTH",
    "MAX_LOGDIR_PAYLOAD",
    "MAX_MIDX_PACKS",
    "MAX_NOTE_LEN",
    "MAX_PACK_LEN",
    "MAX_PATH_LEN",
    "MAX_POINTER_LEN",
    "MAX_PROMOTION_LEN",
    "MAX_REF_LEN",
    "MAX_REMOTE_LIST",
    "MAX_SAMPLES",
    "MAX_SAMPLES_LEN",
    "MAX_SAMPLE_ARRAYS",
    "MAX_RESULTS_CACHE_LEN",
    "MAX_SNAPSHOT_LEN",
    "MAX_SOURCE_URL_LEN",
    "MAX_SNAPSHOT_BYTES",
    "MAX_SETTING_LEN",
    "MAX_SHARED_CONFIG_LEN",
    "MAX_STORE_PATH_LEN",
    "MAX_TF_STATE_LEN",
    "MAX_TIME",
    "MAX_TREE_DEPTH",
]

MAX_POINTER_LEN = 4096
"""A pointer file (``*.mlgit``), in the work tree or as a git blob."""

MAX_REF_LEN = 256
"""A sidecar ref file (32 hex digits and a newline; some slack for whitespace)."""

MAX_CONFIG_LEN = 64 << 10
"""A store's ``config`` file, local or remote."""

MAX_STORE_PATH_LEN = 4096
"""The shared store's path in a clone's ``config`` (the kernel's PATH_MAX)."""

MAX_CLONE_ENTRY_LEN = 16 << 10
"""One entry of a shared store's registry of clones (``clones/<k>``)."""

MAX_INDEX_ENTRIES = 1 << 20
"""Objects in one pack (so one index); writers close a pack when it holds this many."""

MAX_INDEX_LEN = 16 + 34 * MAX_INDEX_ENTRIES + 16
"""A pack index file: header, ``MAX_INDEX_ENTRIES`` entries of 34 bytes, checksum."""

MAX_MIDX_PACKS = 1 << 16
"""Packs one multi-pack index covers (its pack table; its rows are bounded by the u32
counts of its fan-out, and its size by both)."""

MAX_PACK_LEN = 1 << 40
"""A pack file (1 TiB). Index offsets and lengths are checked against it when the
pack's real size is not known (a remote's pack)."""

MAX_REMOTE_LIST = 1 << 20
"""Names one listing of a remote may return: its packs, or its refs (an S3 listing that
goes on past this is refused instead of being read to its end)."""

MAX_SNAPSHOT_LEN = 4 << 20
"""A snapshot object's canonical bytes."""

MAX_PROMOTION_LEN = 64 << 10
"""A promotion object's canonical bytes (a stage's record: ids, names, author, message)."""

MAX_JSON_DEPTH = 32
"""Nesting of JSON objects and arrays in snapshot metadata and note records."""

MAX_TIME = 253402300799
"""The last second of the year 9999: snapshot and record times are 0 to this."""

MAX_FILES = 1 << 40
"""Files (and symlinks) one snapshot or directory entry may claim."""

MAX_SNAPSHOT_BYTES = (1 << 63) - 1
"""Bytes one snapshot or directory entry may claim (a signed 64-bit size)."""

MAX_TREE_DEPTH = 1024
"""Directory levels below a snapshot's root tree (``a/b/f`` is two levels deep). Walks
are iterative at any depth; this bounds the paths a snapshot can make a reader build
(a deeper one would not fit in the kernel's PATH_MAX anyway)."""

MAX_EMPTY_DIRS = 1 << 20
"""Directory paths holding no file or symlink (at any depth below them) one snapshot
may have. A directory entry's ``files`` and ``size`` bound every walk over the files
below it, but nothing counts empty directories, so a few trees that reference one
empty subtree twice per level could otherwise make a checkout create 2**60 of them."""

MAX_PATH_LEN = 4096
"""A tracked path (a pointer file's path without ``.mlgit``), in bytes."""

MAX_NOTE_LEN = 16 << 20
"""One commit's note under ``refs/notes/ml`` (JSON Lines)."""

MAX_SHARED_CONFIG_LEN = 64 << 10
"""The committed settings file ``.mlgitconfig`` (a teammate's commit can put anything there)."""

MAX_SETTING_LEN = 4096
"""One value in ``.mlgitconfig`` (a URL, a path, a number)."""

MAX_SOURCE_URL_LEN = 1024
"""The source URL an imported pointer records (``source:``), in UTF-8 bytes."""

MAX_GITIGNORE_LEN = 16 << 20
"""A ``.gitignore`` git-ml reads to add a line to."""

MAX_RESULTS_CACHE_LEN = 256 << 20
"""One file of ``git ml results``' cache (``.git/ml/cache/results/``): a larger one is not
written, and one found larger is not read (the table is then built from the notes)."""

MAX_TF_STATE_LEN = 1 << 20
"""A TensorFlow ``checkpoint`` state file in a checked-out checkpoint (``mlgit.tf``)."""

MAX_SAMPLES = 10_000
"""Adequacy samples (``commit-ckpt --samples``): how many inputs one checkpoint records."""

MAX_SAMPLES_LEN = 64 << 20
"""Adequacy samples: the input file given, and the stored ``samples.npz`` (its file and
the sum of its arrays' bytes, read from their headers before any array is loaded)."""

MAX_SAMPLE_ARRAYS = 64
"""Adequacy samples: named inputs plus named outputs of one model."""

MAX_EXPORT_MANIFEST_LEN = 1 << 20
"""An export's ``assets.extra/mlgit-export.json`` (read by ``git ml verify --export``)."""

MAX_EVENT_RECORD_LEN = 64 << 20
"""One record of a TensorFlow event file that git-ml reads (a summary, a graph). Summaries
of logs skip a longer record unread; ``git ml board`` refuses an event file holding one,
so that TensorBoard never allocates what its length field claims."""

MAX_LOGDIR_PAYLOAD = 1 << 30
"""The event files of one ``log`` record that ``git ml board`` lays out for TensorBoard
(the sum of their sizes): a larger payload is skipped with a warning."""
