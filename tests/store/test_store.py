"""The rule store against a real git repository in a temp dir: validated commits, stale bases, four-eyes change
requests, reverts, history and path checks."""

import shutil
import threading
from pathlib import Path

import pygit2
import pytest

from kamcore.store import RuleStore, StaleBase, StoreError, UnknownRevision, ValidationFailed

SHIPPED = Path(__file__).resolve().parents[2] / "rules"


@pytest.fixture
def store(tmp_path, seed):
    return RuleStore.open(tmp_path / "data", seed=seed)


def test_first_open_seeds_the_repository_from_the_shipped_rule_book(tmp_path):
    seed = tmp_path / "rules"
    shutil.copytree(SHIPPED, seed)
    store = RuleStore.open(tmp_path / "data", seed=seed)
    head = store.head()
    assert len(head) == 40
    book = store.book()
    assert book.revision == head
    assert "tier" in book.outputs
    assert store.read("tiering.yaml") == (seed / "tiering.yaml").read_text(encoding="utf-8")
    assert any(p.startswith("tests/") for p in store.files())
    (history,) = store.history()
    assert history.author == "kam-rules" and "Seed" in history.message
    # opening again does not seed twice, and needs no seed folder
    assert RuleStore.open(tmp_path / "data", seed=None).head() == head


def test_an_invalid_seed_creates_nothing(tmp_path, seed):
    (seed / "price.yaml").write_text("rules: [", encoding="utf-8")
    with pytest.raises(ValidationFailed) as e:
        RuleStore.open(tmp_path / "data", seed=seed)
    assert e.value.problems[0].file == "price.yaml"
    assert not (tmp_path / "data" / "rules.git" / "HEAD").exists()


def test_compiled_books_are_cached_per_revision(store, price_change):
    assert store.book() is store.book(store.head())
    old = store.head()
    store.commit(price_change(3), old, "alice", "Raise the factor")
    assert store.book().revision != old
    assert store.book(old).revision == old
    assert store.book(old[:8]) is store.book(old)


def test_commit_moves_the_head_and_records_who_and_why(store, price_change):
    base = store.head()
    rev = store.commit(price_change(3), base, "Alice Wang <alice@example.com>", "Raise the factor for Q3")
    assert store.head() == rev
    (latest, seed) = store.history()
    assert latest.id == rev and latest.parents == (base,)
    assert (latest.author, latest.email, latest.message) == ("Alice Wang", "alice@example.com",
                                                             "Raise the factor for Q3")
    assert latest.paths == ("price.yaml", "tests/price.yaml")
    assert "amount * 3" not in store.read("price.yaml", base)
    evaluation = store.book().evaluate([{"amount": 2}])
    assert evaluation.outputs(0)["price"] == 6


def test_a_change_that_does_not_load_is_refused_and_nothing_is_written(store):
    base = store.head()
    with pytest.raises(ValidationFailed) as e:
        broken = "rules:\n  - id: price\n    kind: formula\n    label: Price\n    formulas: {price: amount *}\n"
        store.commit({"price.yaml": broken}, base, "alice", "Broken")
    problem = e.value.problems[0]
    assert (problem.file, problem.line, problem.rule) == ("price.yaml", 5, "price")
    assert store.head() == base
    assert len(store.history()) == 1


def test_a_change_that_fails_its_rule_tests_is_refused(store, price_change):
    base = store.head()
    with pytest.raises(ValidationFailed) as e:
        store.commit(price_change(3, expected=99), base, "alice", "Test expects the wrong price")
    assert e.value.problems[0].file == "tests/price.yaml"
    assert "fails" in str(e.value)
    assert store.head() == base


def test_a_stale_base_is_refused_never_merged(store, price_change):
    base = store.head()
    store.commit(price_change(3), base, "alice", "First")
    with pytest.raises(StaleBase) as e:
        store.commit(price_change(4), base, "bob", "Second, prepared on the old head")
    assert e.value.base == base and e.value.head == store.head()
    assert store.book().evaluate([{"amount": 1}]).outputs(0)["price"] == 3


def test_two_writers_with_the_same_base_exactly_one_wins(store, price_change):
    base = store.head()
    outcomes = []

    def write(factor):
        try:
            outcomes.append(store.commit(price_change(factor), base, f"writer{factor}", "Race"))
        except StaleBase as e:
            outcomes.append(e)

    threads = [threading.Thread(target=write, args=(f,)) for f in (3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(o, str) for o in outcomes) == 1
    assert sum(isinstance(o, StaleBase) for o in outcomes) == 1
    assert len(store.history()) == 2


@pytest.mark.parametrize("message", ["", "   \n"])
def test_an_empty_message_is_refused(store, message, price_change):
    with pytest.raises(StoreError, match="message"):
        store.commit(price_change(3), store.head(), "alice", message)


@pytest.mark.parametrize("path", ["../price.yaml", "/etc/passwd.yaml", "price.py", "a/../../b.yaml", ".git/x.yaml",
                                  "a\\b.yaml", "a/b/c/d/e.yaml", ""])
def test_paths_outside_the_rule_book_are_refused(store, path):
    with pytest.raises(StoreError, match="rule file path"):
        store.commit({path: "rules: []\n"}, store.head(), "alice", "Sneaky")


def test_deleting_a_file_and_unknown_revisions(store):
    base = store.head()
    store.commit({"extra.yaml": "rules: []\n"}, base, "alice", "Add an empty file")
    rev = store.commit({"extra.yaml": None}, store.head(), "alice", "Remove it again")
    assert "extra.yaml" not in store.files(rev)
    with pytest.raises(StoreError, match="does not hold"):
        store.commit({"missing.yaml": None}, rev, "alice", "Delete nothing")
    for bad in ["deadbeef", "HEAD@{1}", "main; rm -rf /", "HEAD~99"]:
        with pytest.raises(UnknownRevision):
            store.book(bad)


def test_revert_makes_a_new_commit_restoring_an_earlier_book(store, price_change):
    first = store.head()
    store.commit(price_change(3), first, "alice", "Raise")
    store.commit(price_change(5), store.head(), "alice", "Raise more")
    rev = store.revert(first, "bob", "Back to the original factor")
    assert store.files(rev) == store.files(first)
    latest = store.history()[0]
    assert latest.reverts == first and latest.author == "bob"
    assert len(store.history()) == 4  # history is never rewritten
    with pytest.raises(StoreError, match="nothing to revert"):
        store.revert(first, "bob", "Again")


def test_history_of_one_file(store, price_change):
    store.commit(price_change(3), store.head(), "alice", "Price")
    store.commit({"other.yaml": "rules: []\n"}, store.head(), "bob", "Other")
    assert [r.message for r in store.history(path="other.yaml")] == ["Other"]
    assert [r.message for r in store.history(path="price.yaml")][:1] == ["Price"]


def test_four_eyes_change_requests(tmp_path, seed, price_change):
    store = RuleStore.open(tmp_path / "data", seed=seed, require_approval=True)
    base = store.head()
    with pytest.raises(StoreError, match="approval"):
        store.commit(price_change(3), base, "alice", "Direct")
    cr = store.propose(price_change(3), base, "alice", "Raise the factor")
    assert (cr.status, cr.author, cr.base, cr.paths) == ("open", "alice", base, ("price.yaml", "tests/price.yaml"))
    assert store.head() == base
    assert "amount * 3" in store.change_request_files(cr.id)["price.yaml"]
    with pytest.raises(StoreError, match="cannot also approve"):
        store.approve(cr.id, "alice")
    rev = store.approve(cr.id, "Bob Li <bob@example.com>")
    assert store.head() == rev
    latest = store.history()[0]
    assert (latest.author, latest.approver, latest.change_request) == ("alice", "Bob Li", cr.id)
    assert latest.message == "Raise the factor"
    assert store.change_request(cr.id).status == "approved"
    assert store.change_request(cr.id).revision == rev
    with pytest.raises(StoreError, match="already approved"):
        store.approve(cr.id, "carol")


def test_a_rejected_request_stays_on_record_and_a_stale_one_cannot_be_approved(tmp_path, seed, price_change):
    store = RuleStore.open(tmp_path / "data", seed=seed, require_approval=True)
    base = store.head()
    rejected = store.propose(price_change(3), base, "alice", "Raise")
    stale = store.propose(price_change(4), base, "alice", "Raise more")
    winner = store.propose(price_change(5), base, "carol", "Raise most")
    store.reject(rejected.id, "bob", "Too much at once")
    store.approve(winner.id, "bob")
    with pytest.raises(StaleBase):
        store.approve(stale.id, "bob")
    on_record = store.change_request(rejected.id)
    assert (on_record.status, on_record.reviewer, on_record.reason) == ("rejected", "bob", "Too much at once")
    assert sorted(c.status for c in store.change_requests()) == ["approved", "open", "rejected"]
    assert [c.id for c in store.change_requests("open")] == [stale.id]


def test_an_invalid_proposal_is_refused(tmp_path, seed, price_change):
    store = RuleStore.open(tmp_path / "data", seed=seed, require_approval=True)
    with pytest.raises(ValidationFailed):
        store.propose(price_change(3, expected=1), store.head(), "alice", "Wrong test")
    assert store.change_requests() == []


def test_the_repository_is_plain_git(store, price_change):
    store.commit(price_change(3), store.head(), "alice", "Raise")
    repo = pygit2.Repository(str(store.data_dir / "rules.git"))
    assert repo.is_bare
    assert str(repo.references["refs/heads/main"].target) == store.head()
