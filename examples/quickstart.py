"""The README's quick start: two parties, each keeps its data, only results cross.

Start each party in its own terminal (same program, different party)::

    python examples/quickstart.py alice
    python examples/quickstart.py bob

or both at once, output prefixed by party::

    fed run --config configs/local-2party.yaml examples/quickstart.py
"""

import sys
import fed

@fed.remote
def load_sales(party):
    return {"alice": [120, 80, 45], "bob": [300, 15]}[party]  # stands in for a private table

@fed.remote
def total(sales):
    return sum(sales)

@fed.remote
class Auditor:
    def __init__(self):
        self.totals = []

    def record(self, a, b):
        self.totals += [a, b]
        return sum(self.totals)

party = sys.argv[1] if len(sys.argv) > 1 else None  # None: $FED_PARTY, set by `fed run`
fed.init(party=party, config="configs/local-2party.yaml")
alice_total = total.party("alice").remote(load_sales.party("alice").remote("alice"))
bob_total = total.party("bob").remote(load_sales.party("bob").remote("bob"))
auditor = Auditor.party("bob").remote()
grand_total = auditor.record.remote(alice_total, bob_total)  # alice's total is pushed to bob
print("grand total:", fed.get(grand_total))                   # 560, at every party
fed.shutdown()
