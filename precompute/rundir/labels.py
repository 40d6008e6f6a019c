"""The researcher's document labels: RUN/labels.json (layout.LABELS), beside the run's files, never inside them.

    {"format": 1, "revision": 7, "label_set": ["teaches the procedure", ...], "labels": {"doc-00012": "..."},
     "sample": ["doc-00731", ...]}

`sample` lists documents drawn at random for labelling (the chance band measured on the same labelling).
Every change is one locked read-modify-write: an exclusive flock on RUN/labels.lock, the file read and checked,
changed, and moved into place atomically (files.atomic_path), so two writers (two browser tabs) never lose each
other's changes and a reader never sees half a file. A file that does not pass the check is never overwritten:
every operation raises LabelsError naming the file and the field, and the file stays as it is.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field, replace

import pandas as pd

from precompute.rundir import layout
from precompute.rundir.edited_files import read_edited, write_edited
from precompute.rundir.lock import WaitingFileLock

FORMAT = 1
DEFAULT_LABEL_SET = ("teaches the procedure", "states the answer", "related topic", "unrelated")
UNLABELLED = "(unlabelled)"
LOCK_TIMEOUT_S = 10.0
CSV_COLUMNS = ("doc_id", "label")


class LabelsError(Exception):
    """A labels file or CSV that cannot be used; the message is written for a person."""


@dataclass(frozen=True)
class Labels:
    label_set: tuple[str, ...] = DEFAULT_LABEL_SET
    labels: dict = field(default_factory=dict)        # doc id -> label
    sample: tuple[str, ...] = ()
    revision: int = 0

    def document(self) -> dict:
        return {"format": FORMAT, "revision": self.revision, "label_set": list(self.label_set),
                "labels": dict(sorted(self.labels.items())), "sample": list(self.sample)}


def labels_path(run_path: str) -> str:
    return os.path.join(str(run_path), layout.LABELS)


def _checked(value, path: str) -> Labels:
    def bad(what: str) -> LabelsError:
        return LabelsError(f"{path}: {what}; the file was left as it is (fix or remove it to label again)")
    if not isinstance(value, dict):
        raise bad("not a JSON object")
    if value.get("format") != FORMAT:
        raise bad(f"field `format` is {value.get('format')!r}, expected {FORMAT}")
    label_set = value.get("label_set")
    if not isinstance(label_set, list) or not all(isinstance(n, str) and n.strip() for n in label_set):
        raise bad("field `label_set` must be a list of non-empty strings")
    if len(set(label_set)) != len(label_set) or UNLABELLED in label_set:
        raise bad(f"field `label_set` repeats a label or uses the reserved name {UNLABELLED!r}")
    labels = value.get("labels")
    if not isinstance(labels, dict):
        raise bad("field `labels` must be an object {document id: label}")
    for doc_id, label in labels.items():
        if label not in label_set:
            raise bad(f"field `labels`, document {doc_id!r}: label {label!r} is not in `label_set`")
    sample = value.get("sample", [])
    if not isinstance(sample, list) or not all(isinstance(d, str) for d in sample):
        raise bad("field `sample` must be a list of document ids")
    revision = value.get("revision", 0)
    if not isinstance(revision, int):
        raise bad("field `revision` must be an integer")
    return Labels(tuple(label_set), dict(labels), tuple(sample), revision)


def read_labels(run_path: str) -> Labels:
    """The run's labels (an empty set with the default label names when there is no file); LabelsError if the
    file is not valid."""
    path = labels_path(run_path)
    value = read_edited(path, LabelsError, "to label again")
    return Labels() if value is None else _checked(value, path)


def update_labels(run_path: str, change) -> Labels:
    """Apply `change(Labels) -> Labels` under the lock to the file's current content and write the result
    atomically (revision + 1); returns what was written. A file that does not pass the check is not touched."""
    with WaitingFileLock(os.path.join(str(run_path), layout.LABELS_LOCK), LabelsError, "labels", LOCK_TIMEOUT_S):
        current = read_labels(run_path)
        changed = change(current)
        changed = replace(changed, revision=current.revision + 1)
        _checked(changed.document(), labels_path(run_path))   # never write what could not be read back
        write_edited(labels_path(run_path), changed.document(), LabelsError)
        return changed


def set_label(run_path: str, doc_id: str, label: str | None) -> Labels:
    """Label one document (None removes its label)."""
    def change(labels: Labels) -> Labels:
        if label is not None and label not in labels.label_set:
            raise LabelsError(f"label {label!r} is not in this run's label set")
        found = dict(labels.labels)
        found.pop(str(doc_id), None)
        if label is not None:
            found[str(doc_id)] = label
        return replace(labels, labels=found)
    return update_labels(run_path, change)


def set_label_set(run_path: str, names: list[str]) -> Labels:
    """Replace the label names; refused while a document carries a label that would be dropped."""
    names = [name.strip() for name in names if name.strip()]

    def change(labels: Labels) -> Labels:
        used = sorted(set(labels.labels.values()) - set(names))
        if used:
            raise LabelsError(f"labels still in use cannot be removed: {', '.join(used)}")
        return replace(labels, label_set=tuple(dict.fromkeys(names)))
    return update_labels(run_path, change)


def add_sample(run_path: str, doc_ids: list[str]) -> Labels:
    """Add documents to the random sample to label (kept in order, no repeats)."""
    return update_labels(run_path, lambda labels: replace(
        labels, sample=tuple(dict.fromkeys([*labels.sample, *map(str, doc_ids)]))))


def to_csv(labels: Labels) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(sorted(labels.labels.items()))
    return buffer.getvalue()


def parse_csv(text: str, known_ids) -> dict[str, str]:
    """doc id -> label from a CSV with columns doc_id,label; LabelsError naming the line for an unknown document,
    an empty label or a missing column."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or not set(CSV_COLUMNS) <= set(reader.fieldnames):
        raise LabelsError(f"labels CSV: the header must have the columns {', '.join(CSV_COLUMNS)}")
    known, found = set(map(str, known_ids)), {}
    for line, row in enumerate(reader, 2):
        doc_id, label = (row.get("doc_id") or "").strip(), (row.get("label") or "").strip()
        if doc_id not in known:
            raise LabelsError(f"labels CSV line {line}: field `doc_id`: {doc_id!r} is not a document of this run")
        if not label or label == UNLABELLED:
            raise LabelsError(f"labels CSV line {line}: field `label` is empty or reserved")
        found[doc_id] = label
    return found


def import_csv(run_path: str, text: str, known_ids) -> Labels:
    """Merge a CSV's labels into the run's (new label names join the label set); nothing is written on error."""
    found = parse_csv(text, known_ids)

    def change(labels: Labels) -> Labels:
        names = tuple(dict.fromkeys([*labels.label_set, *found.values()]))
        return replace(labels, label_set=names, labels={**labels.labels, **found})
    return update_labels(run_path, change)


def label_column(labels: Labels, doc_ids) -> tuple[list, list[str]]:
    """Each document's label (UNLABELLED when none), in `doc_ids` order, and the category names present. Only
    the labelled documents are looked up; a pandas Index of string ids (a run's doc_positions) is used as it is,
    so its hash table is built once per run, not once per labels revision."""
    index = doc_ids if isinstance(doc_ids, pd.Index) and doc_ids.inferred_type == "string" \
        else pd.Index(pd.Series(doc_ids, dtype=object).astype(str))
    if not index.is_unique:
        values = pd.Series(index, dtype=object).map(labels.labels).fillna(UNLABELLED).tolist()
        return values, sorted(set(values))
    values = [UNLABELLED] * len(index)
    present, found = set(), 0
    for position, label in zip(index.get_indexer(list(labels.labels)), labels.labels.values()):
        if position >= 0:
            values[position] = label
            present.add(label)
            found += 1
    return values, sorted(present | ({UNLABELLED} if found < len(index) else set()))
