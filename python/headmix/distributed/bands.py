"""The global attention band of one (query segment, key segment) pair, as a flash_attn call.

Under context parallelism a rank holds segments of the global sequence: query row i and key j
keep their global positions, and the mask of the single-process call (self-attention, S_q =
S_k, so bottom-right and top-left alignment agree) allows j iff i - left <= j <= i + right.
``flash_attn`` on a pair of segments aligns its last query with its last key, and takes only
left, right >= 0 (-1 = unbounded). A past key segment with a window, for instance, needs
"j >= i + c" with c > 0, which no non-negative window says for the full segments. Trimming
fixes that: keep only the query rows that see at least one key of the segment and only the
keys some kept row sees; then the distance between the last kept query and the last kept key
lies inside the band, and the band, measured from that alignment, has non-negative sides.
"""

from __future__ import annotations

from dataclasses import dataclass

UNBOUNDED = -1


@dataclass(frozen=True)
class BlockCall:
    """Rows [q_begin, q_end) of the query segment attend keys [k_begin, k_end) of the key
    segment through flash_attn(causal=causal, window=window): exactly the global band."""

    q_begin: int
    q_end: int
    k_begin: int
    k_end: int
    causal: bool
    window: tuple[int, int]


def global_band(causal: bool, window: tuple[int, int]) -> tuple[float, float]:
    """(left, right) reach of the single-process mask, with inf for unbounded sides."""
    left, right = window
    inf = float("inf")
    return (inf if left < 0 else left, 0 if causal else (inf if right < 0 else right))


def block_call(q_start: int, q_len: int, k_start: int, k_len: int, causal: bool,
               window: tuple[int, int]) -> BlockCall | None:
    """The call for queries at global positions [q_start, q_start + q_len) against keys at
    [k_start, k_start + k_len), or None when no query of the segment sees any of its keys."""
    left, right = global_band(causal, window)
    k_last = k_start + k_len - 1
    # Global query positions with at least one key of the segment in [i - left, i + right].
    first_q = max(q_start, k_start - right)
    last_q = min(q_start + q_len - 1, k_last + left)
    if q_len == 0 or k_len == 0 or first_q > last_q:
        return None
    # Keys that some kept query sees.
    first_k = max(k_start, first_q - left)
    last_k = min(k_last, last_q + right)
    q_begin, q_end = int(first_q - q_start), int(last_q - q_start + 1)
    k_begin, k_end = int(first_k - k_start), int(last_k - k_start + 1)
    # flash_attn puts kept row a at key position a + (k_end - k_begin) - (q_end - q_begin); that
    # is `shift` past its global position, so the band seen from there is (left + shift,
    # right - shift). The trimming above puts shift in [-left, right].
    shift = (last_k - last_q)
    rows, keys = q_end - q_begin, k_end - k_begin
    block_left = UNBOUNDED if left == float("inf") else int(left + shift)
    block_right = UNBOUNDED if right == float("inf") else int(right - shift)
    assert block_left >= UNBOUNDED and block_right >= UNBOUNDED, "trimming keeps the band sides >= 0"
    # Sides that cut nothing inside the kept rectangle become unbounded: flash_attn then takes
    # its unmasked (or plain causal) path.
    if block_left >= keys - 1:
        block_left = UNBOUNDED
    if block_right >= rows - 1:
        block_right = UNBOUNDED
    if block_right == 0 and block_left == UNBOUNDED:
        return BlockCall(q_begin, q_end, k_begin, k_end, True, (UNBOUNDED, UNBOUNDED))
    return BlockCall(q_begin, q_end, k_begin, k_end, False, (block_left, block_right))
