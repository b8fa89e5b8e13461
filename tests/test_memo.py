from kamcore.memo import Memo


def test_a_memo_keeps_what_it_is_told_and_forgets_everything_once_full():
    memo: Memo[str, int] = Memo(3)
    assert memo.remember("a", 1) == 1
    memo.remember("b", 2)
    memo.remember("c", 3)
    assert dict(memo) == {"a": 1, "b": 2, "c": 3}
    assert memo.remember("d", 4) == 4  # full: emptied first, then kept
    assert dict(memo) == {"d": 4}
    memo.remember("d", 5)  # a key it holds is written over
    assert memo.get("d") == 5 and len(memo) == 1
