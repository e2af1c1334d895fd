"""A transformers-style training script: dataclass arguments, read from a JSON file when given
one, as ``run_glue.py args.json`` is run."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

from provenance import recorded_run


@dataclass
class DataArguments:
    train_file: str = field(metadata={"help": "the training table"})
    max_seq_length: int = 128


@dataclass
class TrainingArguments:
    output_dir: str = "out"
    num_train_epochs: int = 3
    hub_token: str | None = None
    end: str = "return"
    report_to: str = "all"
    save_strategy: str = "steps"
    include_num_input_tokens_seen: str = "no"

    def __post_init__(self) -> None:
        # As transformers' own does: settings given as text become what the trainer uses.
        self.output_dir = self.output_dir.rstrip("/")
        self.report_to = ",".join(["tensorboard"] if self.report_to == "all" else [self.report_to])
        self.save_strategy = self.save_strategy.upper()


@recorded_run(
    inputs={"train": "train_file"},
    outputs={"model": lambda args: Path(args.output_dir) / "model.txt"},
)
def main(argv: list[str] | None = None) -> int:
    parser = HfArgumentParser((DataArguments, TrainingArguments))
    given = sys.argv[1:] if argv is None else argv
    if len(given) == 1 and given[0].endswith(".json"):
        data, training = parser.parse_json_file(given[0])
    else:
        data, training = parser.parse_args_into_dataclasses(given)
    out = Path(training.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.txt").write_text(f"{training.num_train_epochs} epochs on {data.train_file}\n")
    if training.end == "raise":
        raise RuntimeError("diverged")
    return 3 if training.end == "return-3" else 0


if __name__ == "__main__":
    sys.exit(main())
