"""What an object references, by the *role* in which it is referenced.

Identical bytes are one object, whatever they are used as: a file whose content
happens to equal a tree's bytes is stored once, perhaps first as a chunk. So a
walk must decode an object as what the reference says it is (a snapshot's tree
is a tree, a tree's chunk is a leaf), never by the type its pack index recorded.
Roots (refs, pointers, note records) name snapshots or trees; their role is
taken from the index type (:data:`ANY`).
"""

from __future__ import annotations

from mlgit.format.pack import OBJ_SNAPSHOT, OBJ_TREE
from mlgit.format.snapshot import decode_snapshot
from mlgit.format.tree import TYPE_DIR, TYPE_FILE, decode_tree

__all__ = ["ANY", "LEAF", "SNAPSHOT", "TREE", "Ref", "references", "resolve_role"]

ANY = "any"
SNAPSHOT = "snapshot"
TREE = "tree"
LEAF = "leaf"

Ref = tuple[bytes, str, int | None]
"""A reference: (raw id, role, expected length for a chunk or None)."""


def resolve_role(role: str, index_type: int) -> str:
    """The role to decode an object as: the reference's, or for a root its index type."""
    if role != ANY:
        return role
    return {OBJ_SNAPSHOT: SNAPSHOT, OBJ_TREE: TREE}.get(index_type, LEAF)


def references(role: str, data: bytes, history: bool = True,
               chunks: bool = True) -> list[Ref]:
    """What an object used in ``role`` references; FormatError if it does not decode so.

    ``history`` False leaves out a snapshot's parents; ``chunks`` False a tree's chunks.
    """
    out: list[Ref] = []
    if role == SNAPSHOT:
        s = decode_snapshot(data)
        out.append((bytes.fromhex(s.tree), TREE, None))
        if history:
            out.extend((bytes.fromhex(p), SNAPSHOT, None) for p in s.parents)
        # A checkpoint's config files are blobs it names (decoded and typed with it).
        for c in s.checkpoint.config if s.checkpoint is not None else ():
            out.append((bytes.fromhex(c.id), LEAF, None))
    elif role == TREE:
        for t in decode_tree(data):
            if t.type == TYPE_DIR:
                out.append((t.subtree, TREE, None))
            elif t.type == TYPE_FILE and chunks:
                out.extend((cid, LEAF, n) for cid, n in t.chunks)
    return out
