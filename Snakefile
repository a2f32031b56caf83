# groundwords: visually grounded word embeddings, from captions + image URLs to the papers' tables.
#
#   snakemake --cores 8 --resources gpu=1                                  # embedded default, offline
#   snakemake --cores 8 --resources gpu=1 --configfile configs/wield-cc.yaml   # the WIELD paper's setting
#   snakemake --profile profiles/slurm --configfile configs/wield-cc.yaml      # on a SLURM cluster
#
# The rules are thin: every stage is a `python -m groundwords.<module>` command that receives its
# config section whole (`--config` JSON through `params:`, so Snakemake reruns a stage when it
# changes); the schema fills in the defaults (README, "How settings reach a stage").

# Job priorities (`priority:` in the rules): on a few cores the scheduler starts the data chain
# (fetch -> encode: every image-using job waits for it) first, then the long PIXIE/IESG trainings
# and the jobs they wait for (PIXIE and its inputs 50-60, V-SGNS/IV-SGNS/IESG 40-45, retrieval 30;
# Snakemake does not pass a priority on to a job's inputs), and fills the other cores with the
# many short WIELD jobs; the DAG's wall time is then close to its CPU time / cores.

import os

from snakemake.utils import min_version

min_version("9.0")


# The embedded default, next to this file (so `-d elsewhere` works); --configfile merges over it.
configfile: os.path.join(workflow.basedir, "config.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/corpus.smk"
include: "workflow/rules/wield.smk"
include: "workflow/rules/iesg.smk"
include: "workflow/rules/pixie.smk"
include: "workflow/rules/claims.smk"


rule all:
    default_target: True
    input:
        table_targets(),
        iesg_targets(),
        pixie_targets(),
        "results/claims.csv",
        "results/claims.md",
