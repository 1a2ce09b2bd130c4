"""Write the SQuAD question sets that go with the reader's article split.

    python eval/reader_sets.py eval/datasets/squad-dev

* ``questions_v2.0_heldout.jsonl``: every 3rd SQuAD v2.0 dev question of the 17
  held-out articles, exactly the rows ``eval/calibrate_abstention.py`` reports on
  (about half unanswerable): the abstention numbers come from here.
* ``questions_reader_validation.jsonl``: every 3rd question of the reader's 5
  validation articles (from v2.0 where the article is in it, so with unanswerables,
  else from v1.1): what the reader's weight and decline threshold are chosen on.

Neither the reader nor the abstention model was trained on these articles
(``citechat.reader.data.squad_split`` says which is which).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from citechat.evaluation import is_answerable, read_questions
from citechat.reader.data import V11_FILE, V20_FILE, DataConfig, squad_split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, help="eval/datasets/squad-dev")
    args = ap.parse_args()
    config = DataConfig()
    split = squad_split(args.folder, config)
    v2 = read_questions(args.folder / V20_FILE)
    v2_every = [r for r in v2[:: config.abstention_every] if is_answerable(r) is not None]
    heldout = [r for r in v2_every if r.get("title") in split.heldout]
    in_v2 = {r.get("title") for r in v2}
    validation = [r for r in v2[::3] if r.get("title") in split.validation]
    v1 = read_questions(args.folder / V11_FILE)
    validation += [
        r for r in v1[::3] if r.get("title") in split.validation and r.get("title") not in in_v2
    ]
    for name, rows in (
        ("questions_v2.0_heldout.jsonl", heldout),
        ("questions_reader_validation.jsonl", validation),
    ):
        path = args.folder / name
        with open(path, "w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        unans = sum(is_answerable(r) is False for r in rows)
        titles = len({r.get("title") for r in rows})
        print(f"{path}: {len(rows)} questions ({unans} unanswerable) from {titles} articles")


if __name__ == "__main__":
    main()
