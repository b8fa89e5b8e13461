"""The live rule book as a git repository: validated commits, change requests, history, diff, blame, impact."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pygit2
from filelock import FileLock
from pygit2.enums import FileMode, SortMode

from . import ruletests
from .errors import KamError, Problem, RuleBookError
from .rulebook import TESTS_DIR, RuleBook, SourceFile

BRANCH = "refs/heads/main"
PROPOSED = "refs/kam/proposed/"
APPROVED = "refs/kam/approved/"
REJECTED = "refs/kam/rejected/"
REPOSITORY = "rules.git"
LOCK = "rules.lock"
RULE_SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_PATH_DEPTH = 4
BOOKS_CACHED = 8
SYSTEM = "kam-rules"
DATA_DIR = ".kam-data"  # where a service or CLI keeps its rule repository and databases unless told otherwise

_REV = re.compile(r"^(HEAD|[0-9a-f]{4,40})(~[0-9]{1,4})?$")
_PATH_PART = re.compile(r"^[\w\u4e00-\u9fff][\w\u4e00-\u9fff.\- ]*$")
_CR_ID = re.compile(r"^[0-9a-f]{12}$")
_TRAILER = re.compile(r"^(Approved-by|Change-Request|Reverts): (.+)$")
_AUTHOR = re.compile(r"^\s*(.+?)\s*<([^<>]*)>\s*$")


class StoreError(KamError):
    """A rule store operation that cannot be done as asked."""


class ValidationFailed(StoreError):
    """The changed rule book does not load or fails its rule tests; nothing was written."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        shown = "; ".join(str(p) for p in problems[:3]) + (" …" if len(problems) > 3 else "")
        super().__init__(f"the change was refused, {len(problems)} problem(s): {shown}")


class StaleBase(StoreError):
    """The change was prepared against a revision that is no longer the head."""

    def __init__(self, base: str, head: str):
        self.base, self.head = base, head
        super().__init__(f"the rules changed since {base[:10]}: the head is now {head[:10]}; "
                         "review that change and prepare yours again on top of it")


class UnknownRevision(StoreError):
    """A revision id, path or change request that the repository does not hold."""


@dataclass(frozen=True)
class Revision:
    """One commit of the rule book, as an auditor reads it."""

    id: str
    author: str
    email: str
    time: dt.datetime
    message: str
    approver: str | None = None
    change_request: str | None = None
    reverts: str | None = None
    parents: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "author": self.author, "email": self.email, "time": self.time.isoformat(),
                "message": self.message, "approver": self.approver, "change_request": self.change_request,
                "reverts": self.reverts, "parents": list(self.parents), "paths": list(self.paths)}


@dataclass(frozen=True)
class ChangeRequest:
    """A proposed change waiting for a second pair of eyes (four-eyes principle)."""

    id: str
    status: str  # open | approved | rejected
    base: str
    author: str
    message: str
    time: dt.datetime
    paths: tuple[str, ...]
    revision: str | None = None  # the commit on main once approved
    reviewer: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "base": self.base, "author": self.author,
                "message": self.message, "time": self.time.isoformat(), "paths": list(self.paths),
                "revision": self.revision, "reviewer": self.reviewer, "reason": self.reason}


@dataclass(frozen=True)
class BlameEntry:
    """Who last changed one element of a rule (a table row, a scorecard band, the rule's header…)."""

    element: str
    revision: Revision

    def to_dict(self) -> dict[str, Any]:
        return {"element": self.element, **{k: v for k, v in self.revision.to_dict().items() if k != "paths"}}


@dataclass
class _Elements:
    """Per blob id: the blame-able elements of the rules in one file, so history reads each version once."""

    by_blob: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)


class RuleStore:
    """A rule book kept in a bare git repository under a data dir; the branch `main` is the live book."""

    def __init__(self, data_dir: Path, require_approval: bool = False):
        self.data_dir = data_dir
        self.require_approval = require_approval
        self._repo = pygit2.Repository(str(data_dir / REPOSITORY))
        self._lock = FileLock(str(data_dir / LOCK))
        self._mutex = threading.RLock()  # one pygit2 repository object, shared by the service's threads
        self._books: OrderedDict[str, RuleBook] = OrderedDict()
        self._elements = _Elements()

    # --- opening ---

    @classmethod
    def open(cls, data_dir: str | Path, seed: str | Path | None = "rules/",
             require_approval: bool = False) -> RuleStore:
        """Open the store under `data_dir`, creating it from the rule book folder `seed` on first use."""
        data = Path(data_dir)
        data.mkdir(parents=True, exist_ok=True)
        with FileLock(str(data / LOCK)):
            if not (data / REPOSITORY / "HEAD").exists():
                if seed is None:
                    raise StoreError(f"{data} holds no rule repository and no seed folder was given")
                _seed(data / REPOSITORY, Path(seed))
        return cls(data, require_approval)

    # --- reading ---

    def head(self) -> str:
        """The revision id of the live rule book."""
        with self._mutex:
            return str(self._repo.references[BRANCH].target)

    def resolve(self, rev: str = "HEAD") -> str:
        """A full revision id for `HEAD`, `HEAD~2`, or a (short) commit id."""
        if not isinstance(rev, str) or not _REV.match(rev):
            raise UnknownRevision(f"{rev!r} is not a revision: give a commit id (4–40 hex digits) or HEAD")
        with self._mutex:
            try:
                obj = self._repo.revparse_single(rev.replace("HEAD", BRANCH, 1))
                commit = obj.peel(pygit2.Commit)
            except (KeyError, ValueError, pygit2.GitError):
                raise UnknownRevision(f"no revision {rev!r} in the rule history") from None
            return str(commit.id)

    def files(self, rev: str = "HEAD") -> dict[str, str]:
        """Every rule and test file at a revision, path → text."""
        with self._mutex:
            return _tree_files(self._repo, self._commit(rev).tree)

    def read(self, path: str, rev: str = "HEAD") -> str:
        """The text of one file at a revision."""
        path = _checked_path(path)
        with self._mutex:
            try:
                entry = self._commit(rev).tree[path]
            except KeyError:
                raise UnknownRevision(f"no file {path!r} at revision {rev}") from None
            return self._repo[entry.id].data.decode("utf-8")

    def book(self, rev: str = "HEAD") -> RuleBook:
        """The compiled rule book at a revision (compiled once per revision, then cached)."""
        rid = self.resolve(rev)
        with self._mutex:
            if rid in self._books:
                self._books.move_to_end(rid)
                return self._books[rid]
        book = RuleBook.from_files(_rule_files(self.files(rid)), revision=rid)
        with self._mutex:
            self._books[rid] = book
            while len(self._books) > BOOKS_CACHED:
                self._books.popitem(last=False)
        return book

    # --- changing ---

    def validate(self, changes: Mapping[str, str | None], base: str) -> RuleBook:
        """The rule book `changes` would make on top of `base`, loaded and tested; raises ValidationFailed."""
        return checked_book(_apply(self.files(base), changes))

    def commit(self, changes: Mapping[str, str | None], base: str, author: str, message: str) -> str:
        """Commit `changes` (path → new text, or None to delete) made on top of `base`; returns the new head.

        The changed book is loaded and its rule tests run before anything is written. With approval
        required, use `propose` instead."""
        if self.require_approval:
            raise StoreError("changes to this rule book need approval: propose them as a change request")
        return self._commit_on_head(changes, base, author, message)

    def revert(self, rev: str, author: str, message: str) -> str:
        """A new commit restoring the rule book as it was at `rev` (history is never rewritten)."""
        target = self.resolve(rev)
        message = _checked_message(message)
        with self._lock:
            head = self.head()
            current, wanted = self.files(head), self.files(target)
            changes: dict[str, str | None] = {p: t for p, t in wanted.items() if current.get(p) != t}
            changes.update({p: None for p in current if p not in wanted})
            if not changes:
                raise StoreError(f"the rule book at {target[:10]} is the same as the head: nothing to revert")
            checked_book(wanted)
            return self._write(changes, head, _signature(author), _signature(author),
                               f"{message}\n\nReverts: {target}")

    def propose(self, changes: Mapping[str, str | None], base: str, author: str, message: str) -> ChangeRequest:
        """Store a validated change on its own ref, for an approver other than the author to commit."""
        base = self.resolve(base)
        message = _checked_message(message)
        changes = _checked_changes(changes)
        checked_book(_apply(self.files(base), changes))
        sig = _signature(author)
        cr_id = secrets.token_hex(6)
        with self._lock, self._mutex:
            tree = _tree_with(self._repo, self._repo[base].peel(pygit2.Commit).tree, changes)
            oid = self._repo.create_commit(None, sig, sig, message, tree, [pygit2.Oid(hex=base)])
            self._repo.references.create(PROPOSED + cr_id, oid)
        return self.change_request(cr_id)

    def approve(self, cr_id: str, approver: str) -> str:
        """Commit a change request; the approver must not be its author and its base must still be the head."""
        cr = self.change_request(cr_id)
        if cr.status != "open":
            raise StoreError(f"change request {cr_id} is already {cr.status}")
        approver_sig = _signature(approver)
        with self._mutex:
            proposal = self._repo.references[PROPOSED + cr_id].peel(pygit2.Commit)
        if approver_sig.name == proposal.author.name:
            raise StoreError(f"{approver_sig.name} wrote change request {cr_id} and cannot also approve it")
        with self._lock:
            head = self.head()
            if head != cr.base:
                raise StaleBase(cr.base, head)
            proposed = self._tree_files_of(proposal)
            checked_book(proposed)
            changes = _changes_between(self.files(cr.base), proposed)
            message = f"{proposal.message.rstrip()}\n\nApproved-by: {approver_sig.name}\nChange-Request: {cr_id}"
            rev = self._write(changes, head, proposal.author, approver_sig, message)
            with self._mutex:
                self._repo.references.create(APPROVED + cr_id, pygit2.Oid(hex=rev))
            return rev

    def reject(self, cr_id: str, reviewer: str, reason: str) -> ChangeRequest:
        """Close a change request without committing it; it stays on record with the reason."""
        reason = _checked_message(reason)
        sig = _signature(reviewer)
        with self._lock, self._mutex:
            cr = self.change_request(cr_id)
            if cr.status != "open":
                raise StoreError(f"change request {cr_id} is already {cr.status}")
            proposal = self._repo.references[PROPOSED + cr_id].peel(pygit2.Commit)
            oid = self._repo.create_commit(None, sig, sig, reason, proposal.tree.id, [proposal.id])
            self._repo.references.create(REJECTED + cr_id, oid)
        return self.change_request(cr_id)

    def change_request(self, cr_id: str) -> ChangeRequest:
        if not isinstance(cr_id, str) or not _CR_ID.match(cr_id):
            raise UnknownRevision(f"{cr_id!r} is not a change request id")
        with self._mutex:
            refs = self._repo.references
            if PROPOSED + cr_id not in refs:
                raise UnknownRevision(f"no change request {cr_id}")
            proposal = refs[PROPOSED + cr_id].peel(pygit2.Commit)
            base = proposal.parents[0]
            paths = tuple(sorted(_changes_between(_tree_files(self._repo, base.tree),
                                                  _tree_files(self._repo, proposal.tree))))
            status, revision, reviewer, reason = "open", None, None, None
            if APPROVED + cr_id in refs:
                approved = refs[APPROVED + cr_id].peel(pygit2.Commit)
                status, revision, reviewer = "approved", str(approved.id), approved.committer.name
            elif REJECTED + cr_id in refs:
                rejected = refs[REJECTED + cr_id].peel(pygit2.Commit)
                status, reviewer, reason = "rejected", rejected.committer.name, rejected.message.strip()
            return ChangeRequest(cr_id, status, str(base.id), proposal.author.name, proposal.message.strip(),
                                 _time(proposal.author), paths, revision, reviewer, reason)

    def change_requests(self, status: str | None = None) -> list[ChangeRequest]:
        """Every change request, newest first, optionally only those with one status."""
        with self._mutex:
            ids = [name[len(PROPOSED):] for name in self._repo.references if name.startswith(PROPOSED)]
        found = [self.change_request(i) for i in ids]
        return sorted((c for c in found if status is None or c.status == status), key=lambda c: c.time,
                      reverse=True)

    def change_request_files(self, cr_id: str) -> dict[str, str]:
        """The rule book as a change request would make it."""
        self.change_request(cr_id)
        with self._mutex:
            return self._tree_files_of(self._repo.references[PROPOSED + cr_id].peel(pygit2.Commit))

    # --- history ---

    def history(self, path: str | None = None, rule_id: str | None = None, rev: str = "HEAD") -> list[Revision]:
        """Revisions of the live book, newest first: all, those that changed a file, or those that changed a rule."""
        if path is not None:
            path = _checked_path(path)
        found = []
        for commit, parent in self._walk(rev):
            if path is not None and _blob_at(commit.tree, path) == (_blob_at(parent.tree, path) if parent else None):
                continue
            if rule_id is not None and self._rule_elements(commit, rule_id) == (
                    self._rule_elements(parent, rule_id) if parent else None):
                continue
            found.append(self._revision(commit, parent))
        return found

    def blame(self, rule_id: str, rev: str = "HEAD") -> list[BlameEntry]:
        """For each element of a rule (its header, each table row, scorecard band…): the revision that last
        changed it. Elements are followed back through each revision by content, so a row inserted above
        another does not take the blame for it."""
        from .rulediff import matched_elements

        with self._mutex:
            current = self._rule_elements(self._commit(rev), rule_id)
        if current is None:
            raise UnknownRevision(f"no rule {rule_id!r} at revision {rev}")
        following = {key: key for key in current}  # element as named now → its name in the commit examined
        last: dict[str, Revision] = {}
        for commit, parent in self._walk(rev):
            here = self._rule_source(commit, rule_id)
            before = self._rule_source(parent, rule_id) if parent else None
            names = (matched_elements(before[1], here[1]).get(rule_id, {}) if before else {})
            before_elements = self._rule_elements(parent, rule_id) if parent and before else {}
            here_elements = self._rule_elements(commit, rule_id) or {}
            for key, name in list(following.items()):
                older = names.get(name)
                if older is None or before_elements.get(older) != here_elements.get(name):
                    last[key] = self._revision(commit, parent)
                    del following[key]
                else:
                    following[key] = older
            if not following:
                break
        return [BlameEntry(key, last[key]) for key in current]

    def diff(self, a: str, b: str = "HEAD") -> Any:
        """The semantic diff (per rule: rows, thresholds, outputs, labels) and the raw text diff from `a` to `b`."""
        from .rulediff import diff_books

        return diff_books(self.files(a), self.files(b))

    def impact(self, changes: Mapping[str, str | None], portfolio: Any, base: str = "HEAD",
               as_of: dt.date | str | None = None) -> Any:
        """What `changes` on top of `base` would do to a portfolio: tier migration, changed entitlements, credit
        status and segments, credit-limit, exposure-on-hold and points deltas. Nothing is committed."""
        from .impact import impact

        return impact(self.book(base), self.validate(changes, base), portfolio, as_of)

    # --- internals ---

    def _commit(self, rev: str) -> pygit2.Commit:
        return self._repo[self.resolve(rev)].peel(pygit2.Commit)

    def _tree_files_of(self, commit: pygit2.Commit) -> dict[str, str]:
        return _tree_files(self._repo, commit.tree)

    def _commit_on_head(self, changes: Mapping[str, str | None], base: str, author: str, message: str) -> str:
        message = _checked_message(message)
        changes = _checked_changes(changes)
        sig = _signature(author)
        base = self.resolve(base)
        if base != self.head():
            raise StaleBase(base, self.head())
        checked_book(_apply(self.files(base), changes))  # before the lock: validation is the slow part
        with self._lock:
            head = self.head()
            if head != base:
                raise StaleBase(base, head)
            return self._write(changes, head, sig, sig, message)

    def _write(self, changes: Mapping[str, str | None], head: str, author: pygit2.Signature,
               committer: pygit2.Signature, message: str) -> str:
        """Write one commit on top of `head` and move the branch to it. The caller holds the writer lock and has
        validated the resulting book."""
        with self._mutex:
            tree = _tree_with(self._repo, self._commit(head).tree, changes)
            oid = self._repo.create_commit(None, author, committer, message, tree, [pygit2.Oid(hex=head)])
            _clear_stale_ref_lock(Path(self._repo.path), BRANCH)
            self._repo.references[BRANCH].set_target(oid, f"kam: {message.splitlines()[0]}")
            return str(oid)

    def _walk(self, rev: str) -> Iterator[tuple[pygit2.Commit, pygit2.Commit | None]]:
        with self._mutex:
            commits = list(self._repo.walk(self._repo[self.resolve(rev)].id, SortMode.TOPOLOGICAL))
        for commit in commits:
            yield commit, (commit.parents[0] if commit.parents else None)

    def _revision(self, commit: pygit2.Commit, parent: pygit2.Commit | None) -> Revision:
        body, trailers = _split_trailers(commit.message)
        with self._mutex:
            before = _tree_files(self._repo, parent.tree) if parent else {}
            paths = tuple(sorted(_changes_between(before, _tree_files(self._repo, commit.tree))))
        return Revision(str(commit.id), commit.author.name, commit.author.email, _time(commit.author), body,
                        trailers.get("Approved-by"), trailers.get("Change-Request"), trailers.get("Reverts"),
                        tuple(str(p) for p in commit.parent_ids), paths)

    def _rule_elements(self, commit: pygit2.Commit, rule_id: str) -> dict[str, str] | None:
        """The canonical text of each blame-able element of one rule at a commit (None: no such rule)."""
        found = self._rule_source(commit, rule_id)
        if found is None:
            return None
        return self._elements.by_blob[found[0]][rule_id]

    def _rule_source(self, commit: pygit2.Commit, rule_id: str) -> tuple[str, dict[str, str]] | None:
        """The blob id and {path: text} of the file holding a rule at a commit (None: no such rule)."""
        from .rulediff import elements

        with self._mutex:
            for path, blob_id in _tree_blobs(commit.tree).items():
                if path.startswith(TESTS_DIR + "/"):
                    continue
                per_file = self._elements.by_blob.get(blob_id)
                text = None
                if per_file is None:
                    text = self._repo[blob_id].data.decode("utf-8")
                    per_file = self._elements.by_blob[blob_id] = elements({path: text})
                if rule_id in per_file:
                    return blob_id, {path: text if text is not None else self._repo[blob_id].data.decode("utf-8")}
        return None


# --- validation of changes ---

def _checked_message(message: str) -> str:
    if not isinstance(message, str) or not message.strip():
        raise StoreError("a change needs a message saying why it was made")
    return message.strip() + "\n"


def _checked_path(path: str) -> str:
    """A rule file path as stored: relative, posix, no `..`, a YAML file, a few folders deep at most."""
    if not isinstance(path, str) or not path or "\\" in path or "\x00" in path:
        raise StoreError(f"{path!r} is not a rule file path")
    pure = PurePosixPath(path)
    parts = pure.parts
    if (pure.is_absolute() or len(parts) > MAX_PATH_DEPTH or not all(_PATH_PART.match(p) for p in parts)
            or pure.suffix not in RULE_SUFFIXES):
        raise StoreError(f"{path!r} is not a rule file path: use a relative path to a .yaml file such as "
                         "`credit.yaml` or `tests/credit.yaml`")
    return pure.as_posix()


def _checked_changes(changes: Mapping[str, str | None]) -> dict[str, str | None]:
    if not changes:
        raise StoreError("the change is empty: give at least one file")
    checked: dict[str, str | None] = {}
    for path, text in changes.items():
        path = _checked_path(path)
        if text is not None:
            if not isinstance(text, str):
                raise StoreError(f"{path}: the new content must be text")
            if len(text.encode("utf-8")) > MAX_FILE_BYTES:
                raise StoreError(f"{path}: a rule file may hold at most {MAX_FILE_BYTES // 1024 // 1024} MiB")
        checked[path] = text
    return checked


def _apply(files: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    result = dict(files)
    for path, text in _checked_changes(changes).items():
        if text is None:
            if path not in result:
                raise StoreError(f"{path}: cannot delete a file the rule book does not hold")
            del result[path]
        else:
            result[path] = text
    return result


def _rule_files(files: Mapping[str, str]) -> dict[str, str]:
    return {p: t for p, t in files.items() if not p.startswith(TESTS_DIR + "/")}


def checked_book(files: Mapping[str, str]) -> RuleBook:
    """Load the rule book and run its tests; any error or failing test refuses the change."""
    try:
        book = RuleBook.from_files(_rule_files(files))
    except RuleBookError as e:
        raise ValidationFailed([p for p in e.problems if p.is_error]) from None
    tests = [SourceFile(p, t) for p, t in sorted(files.items()) if p.startswith(TESTS_DIR + "/")]
    run = ruletests.run(book, tests)
    if not run.passed:
        problems = list(run.problems)
        for result in run.failed:
            problems.append(Problem(f"rule test {result.name!r} fails: " + "; ".join(map(str, result.failures)),
                                    result.file, result.line))
        raise ValidationFailed(problems)
    return book


def _changes_between(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, str | None]:
    changes: dict[str, str | None] = {p: t for p, t in after.items() if before.get(p) != t}
    changes.update({p: None for p in before if p not in after})
    return changes


# --- git plumbing ---

def _seed(repository: Path, folder: Path) -> None:
    if not folder.is_dir():
        raise StoreError(f"seed rule book folder {str(folder)!r} does not exist")
    files = {p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8")
             for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix in RULE_SUFFIXES}
    checked_book(files)
    repo = pygit2.init_repository(str(repository), bare=True, initial_head="main")
    sig = _signature(SYSTEM)
    tree = _tree_with(repo, None, files)
    oid = repo.create_commit(None, sig, sig, f"Seed the rule book from {folder.as_posix()}\n", tree, [])
    repo.references.create(BRANCH, oid)


def _tree_with(repo: pygit2.Repository, tree: pygit2.Tree | None, changes: Mapping[str, str | None]) -> pygit2.Oid:
    index = pygit2.Index()
    if tree is not None:
        index.read_tree(tree)
    for path, text in changes.items():
        if text is None:
            index.remove(path)
        else:
            index.add(pygit2.IndexEntry(path, repo.create_blob(text.encode("utf-8")), FileMode.BLOB))
    return index.write_tree(repo)


def _tree_blobs(tree: pygit2.Tree, prefix: str = "") -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in tree:
        path = prefix + entry.name
        if entry.type_str == "tree":
            found.update(_tree_blobs(entry, path + "/"))
        elif entry.type_str == "blob" and path.endswith(RULE_SUFFIXES):
            found[path] = str(entry.id)
    return found


def _tree_files(repo: pygit2.Repository, tree: pygit2.Tree) -> dict[str, str]:
    return {p: repo[oid].data.decode("utf-8") for p, oid in _tree_blobs(tree).items()}


def _blob_at(tree: pygit2.Tree, path: str) -> str | None:
    try:
        return str(tree[path].id)
    except KeyError:
        return None


def _clear_stale_ref_lock(git_dir: Path, ref: str) -> None:
    """A writer killed while moving the branch leaves git's `<ref>.lock` behind. We hold the writer lock, so
    no live writer owns it: remove it, or every later commit would fail."""
    stale = git_dir / (ref + ".lock")
    stale.unlink(missing_ok=True)


def _signature(who: str) -> pygit2.Signature:
    if not isinstance(who, str) or not who.strip():
        raise StoreError("a change needs an author")
    m = _AUTHOR.match(who)
    name, email = (m.group(1), m.group(2) or m.group(1)) if m else (who.strip(), who.strip())
    return pygit2.Signature(name, email)


def _time(sig: pygit2.Signature) -> dt.datetime:
    return dt.datetime.fromtimestamp(sig.time, dt.timezone(dt.timedelta(minutes=sig.offset)))


def _split_trailers(message: str) -> tuple[str, dict[str, str]]:
    lines = message.rstrip().splitlines()
    trailers: dict[str, str] = {}
    while lines and (m := _TRAILER.match(lines[-1])):
        trailers[m.group(1)] = m.group(2)
        lines.pop()
    return "\n".join(lines).strip(), trailers
