"""Entry point of one party process started by the harness."""

import importlib
import json
import pickle
import sys


def main() -> None:
    spec_path, party, result_path = sys.argv[1:4]
    with open(spec_path) as f:
        spec = json.load(f)
    body = importlib.import_module(spec["module"])
    for part in spec["func"].split("."):
        body = getattr(body, part)
    value = body(party, spec["addresses"], **spec["args"])
    with open(result_path, "wb") as f:
        pickle.dump(value, f)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
