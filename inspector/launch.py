"""Entry script for MindSpore's distributed launcher, which runs a Python file on every worker:

    msrun --worker_num=8 --local_worker_num=8 --master_port=8118 --log_dir=msrun_log --join=True \\
        "$(python -c 'import inspector.launch as m; print(m.__file__)')" --config train.yaml

Each worker runs `inspector train` with the same arguments; the trainer joins the collective group (see
train/trainer.py, distributed_context) and shards the data by rank.
"""

import sys

from inspector.cli import main

if __name__ == "__main__":
    sys.exit(main(["train"] + sys.argv[1:]))
