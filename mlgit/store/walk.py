"""What an object references, by the *role* in which it is referenced.

Identical bytes are one object, whatever they are used as: a file whose content
happens to equal a tree's bytes is stored once, perhaps first as a chunk. So a
walk must decode an object as what the reference says it is (a snapshot's tree
is a tree, a tree's chunk is a leaf), never by the type its pack index recorded.
Roots carry their role too (``api.maintenance.roots``): dataset and run refs,
pointers, checkpoint records and results datasets name snapshots, note payloads name
trees, stage refs name promotions. :data:`ANY` (the role taken from the index type)
remains for a root whose role is not known.

Roles: :data:`SNAPSHOT`; :data:`TREE`, a directory's tree; :data:`FILE_TREE`, the
tree of a ``root: "file"`` snapshot, which must hold exactly one regular file
(it references what a tree does); :data:`LEAF`, a chunk or blob; :data:`PROMOTION`,
a stage's record, which references the checkpoint snapshot it names and the stage's
previous record (its history); :data:`TRAIL`, a stage's earlier record fetched for the
audit trail alone (a fetch without history: it references its own previous record,
not the checkpoint it named, so ``model@stage`` brings one checkpoint and every record).
"""

from __future__ import annotations

from mlgit.format.ids import RawObjectID, hex_to_raw
from mlgit.format.pack import OBJ_BLOB, OBJ_CHUNK, OBJ_PROMOTION, OBJ_SNAPSHOT, OBJ_TREE
from mlgit.format.promotion import decode_promotion
from mlgit.format.snapshot import ROOT_FILE, decode_snapshot
from mlgit.format.tree import TYPE_DIR, TYPE_FILE, TreeEntry, decode_tree

__all__ = ["ANY", "FILE_TREE", "LEAF", "PROMOTION", "ROLE_TYPES", "SNAPSHOT", "TRAIL", "TREE",
           "TREE_ROLES", "Ref", "references", "resolve_role", "tree_references", "type_name"]

ANY = "any"
SNAPSHOT = "snapshot"
TREE = "tree"
FILE_TREE = "file-tree"
LEAF = "leaf"
PROMOTION = "promotion"
TRAIL = "trail"
TREE_ROLES = (TREE, FILE_TREE)
"""The roles decoded as a tree."""
ROLE_TYPES = {SNAPSHOT: OBJ_SNAPSHOT, TREE: OBJ_TREE, FILE_TREE: OBJ_TREE,
              PROMOTION: OBJ_PROMOTION, TRAIL: OBJ_PROMOTION}
"""The object type of each role that is not a leaf (a leaf is a chunk or a blob)."""

Ref = tuple[RawObjectID, str, int | None]
"""A reference: (raw id, role, expected length for a chunk or None)."""


def resolve_role(role: str, index_type: int) -> str:
    """The role to decode an object as: the reference's, or for a root its index type."""
    if role != ANY:
        return role
    return {OBJ_SNAPSHOT: SNAPSHOT, OBJ_TREE: TREE, OBJ_PROMOTION: PROMOTION}.get(index_type,
                                                                                 LEAF)


def type_name(index_type: int) -> str:
    """What a pack index's type number calls an object: ``a tree``, ``a chunk``, ..."""
    return {OBJ_SNAPSHOT: "a snapshot", OBJ_TREE: "a tree", OBJ_CHUNK: "a chunk",
            OBJ_BLOB: "a blob", OBJ_PROMOTION: "a promotion"}.get(
                index_type, f"an object of type {index_type}")


def tree_references(entries: list[TreeEntry], chunks: bool = True) -> list[Ref]:
    """What a tree with these entries references: subtrees, and chunks unless ``chunks`` False."""
    out: list[Ref] = []
    for t in entries:
        if t.type == TYPE_DIR:
            out.append((t.subtree, TREE, None))
        elif t.type == TYPE_FILE and chunks:
            out.extend((cid, LEAF, n) for cid, n in t.chunks)
    return out


def references(role: str, data: bytes, history: bool = True,
               chunks: bool = True) -> list[Ref]:
    """What an object used in ``role`` references; FormatError if it does not decode so.

    ``history`` False leaves out a snapshot's parents, and takes a promotion's parent as
    a :data:`TRAIL` (its records, not their checkpoints); ``chunks`` False a tree's chunks.
    """
    out: list[Ref] = []
    if role == SNAPSHOT:
        s = decode_snapshot(data)
        out.append((hex_to_raw(s.tree), FILE_TREE if s.root == ROOT_FILE else TREE, None))
        if history:
            out.extend((hex_to_raw(p), SNAPSHOT, None) for p in s.parents)
        # A checkpoint's config files are blobs it names (decoded and typed with it).
        for c in s.checkpoint.config if s.checkpoint is not None else ():
            out.append((hex_to_raw(c.id), LEAF, None))
    elif role in TREE_ROLES:
        out.extend(tree_references(decode_tree(data), chunks))
    elif role in (PROMOTION, TRAIL):
        p = decode_promotion(data)
        if role == PROMOTION and p.checkpoint is not None:
            out.append((hex_to_raw(p.checkpoint), SNAPSHOT, None))
        if p.parent is not None:
            out.append((hex_to_raw(p.parent), PROMOTION if history else TRAIL, None))
    return out
