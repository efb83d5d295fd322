"""Start-up time: `import transformers_groma`, `groma --help` and a `groma` argument error, side by side with
`import torch` and `import transformers`.

Each command runs in a fresh interpreter (`python -c ...`, so the console script's own start is included), rounds
interleaved. The target is under 2 s for `groma --help` and argument errors; the ratio column says how many
`import torch` each command costs.

    python benchmarks/import_time.py
"""

import argparse
import subprocess
import sys
import time

import torch
from common import Deadline, ResultTable, add_common_arguments, ratios, spread


COMMANDS = {
    "import torch": "import torch",
    "import transformers": "import transformers",
    "import transformers_groma": "import transformers_groma",
    "groma --help": "from transformers_groma_cli import main; main(['--help'])",
    "groma argument error": "from transformers_groma_cli import main; main(['predict', '--no-such-option'])",
}


def run(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, repeats=5)
    args = parser.parse_args(argv)
    device = torch.device("cpu")  # start-up is host work: the table names the host
    deadline = Deadline(args.time_budget)
    times = {name: [] for name in COMMANDS}
    run(COMMANDS["import transformers_groma"])  # warm the file-system cache and bytecode
    complete = True
    for index in range(args.repeats):
        if index and deadline.remaining() < sum(t[-1] for t in times.values()):
            complete = False
            break
        names = list(COMMANDS)[index % len(COMMANDS) :] + list(COMMANDS)[: index % len(COMMANDS)]
        for name in names:
            if index and deadline.remaining() <= 0:
                break
            times[name].append(run(COMMANDS[name]))
        print(f"import time: round {index + 1}/{args.repeats} done", flush=True)
    table = ResultTable(
        "import_time",
        "Start-up time (fresh interpreter per command)",
        args,
        device,
        notes=[
            "seconds: median (min-max) over the rounds; 'x import torch' is taken round by round",
            "groma --help / argument error: the console script's `main` run through `python -c`",
        ],
        model=None,
    )
    for name in COMMANDS:
        table.add_row(
            {
                "command": name,
                "seconds": spread(times[name]),
                "x import torch": spread(ratios(times[name], times["import torch"]), suffix="x"),
                "under 2 s": "yes" if times[name] and max(times[name]) < 2 else "no",
            }
        )
    table.write(complete)


if __name__ == "__main__":
    main()
