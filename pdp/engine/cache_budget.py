"""How much memory each worker's request caches may hold, per bundle.

Every worker builds its own caches (a supervisor's forked workers share the
bundle, not what they build afterwards), so the whole server's memory is the
bundle once plus these budgets once per worker. A cached Cedar handle costs
about what it copies, so each cache is bounded by copies, not by entries
(measured in a process filling 2,000 handles, RSS before and after; the
figures and the command are in bench/RESULTS.md, branch hcache):

- an entity in a ``cedarpy.Entities`` handle: about 2.5 KB;
- a policy in a ``cedarpy.PolicySet`` handle: about 2 KB.

With the budgets below a worker's caches hold at most about 15 + 8 + 8 + 4 + 9 MB,
and 8 MB of Cedar's answers, at any traffic (before issue 16 they were bounded by
entries: ~70 MB of entity slices alone at 4,096). A request whose handle alone
exceeds a budget is answered but its handle is not kept. What else a forked worker
adds (the pages of the shared bundle it writes to) is not bounded here:
bench/RESULTS.md.
"""

from __future__ import annotations

ENTITY_COPY_BYTES = 2_500
POLICY_COPY_BYTES = 2_000

# Per-request entity sets of a large bundle (pdp.engine.entity_slice): entity copies.
ENTITY_SLICE_COPIES = 6_000
# Policy sets per request scope and per set of candidate policies (pdp.engine.slicing):
# policy copies each (a scope's entry counts its policies though it usually shares the
# candidates' set, so that the bound holds when it does not).
SCOPE_SLICE_POLICIES = 4_000
POLICY_SLICE_POLICIES = 4_000
# Why-not probe sets (pdp.engine.whynot): policies probed (each with its conditions).
PROBE_POLICIES = 2_000
# Static ancestors per uid (pdp.engine.graph): uids, ~450 bytes each with the set (~9 MB).
ANCESTOR_SETS = 20_000
# Cedar's answers (pdp.engine.answer_memo): about 1.5 KB an answer with a live context of
# ~0.6 KB, plus the policy slices the answers hold; a worker's memo is at most 8 MB.
ANSWER_MEMO_BYTES = 8_000_000
ANSWER_MEMO_ENTRIES = 8_192
