"""``stale experiment SPEC --out DIR [...]`` / ``stale experiment summarize DIR`` / ``stale experiment list``."""

HELP = "run a paper experiment (variants x datasets x settings x splits x seeds) and tabulate mean ± std"


def add_arguments(parser):
    parser.add_argument("spec", metavar="SPEC|summarize|list",
                        help="experiment spec (YAML file or shipped name, e.g. table1), or 'summarize DIR', or 'list'")
    parser.add_argument("folder", nargs="?", help="with summarize: the experiment folder")
    parser.add_argument("--out", help="experiment folder (cells, results.json, results.md, results.png)")
    parser.add_argument("--splits", default=None, help="class splits to run: dev (0-2, for choices), test (3-9, for reports), or e.g. 0-9 / 0,1,2 (default: the spec's)")
    parser.add_argument("--seeds", default=None, help="training seeds, e.g. 0-2 (default: the spec's)")
    parser.add_argument("--variants", default=None,
                        help="comma-separated subset of the spec's variants (names holding commas are matched whole)")
    parser.add_argument("--settings", default=None, help="comma-separated subset of the spec's settings, e.g. 50/50")
    parser.add_argument("--datasets", default=None,
                        help="comma-separated datasets of the spec (default: its default_datasets, e.g. the built-in "
                             "benchmarks; real ones need --set data.features.root=...)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override applied to every cell (e.g. data roots of real features), repeatable")
    parser.add_argument("--jobs", type=int, default=1,
                        help="cells run at once on this machine (one GPU each if there are GPUs; CPU threads divided otherwise)")
    parser.add_argument("--launcher", default="local", choices=["local", "slurm", "submitit-local"],
                        help="local processes, Slurm jobs through submitit, or submitit's local executor")
    parser.add_argument("--partition", default=None, help="Slurm partition")
    parser.add_argument("--time", type=int, default=60, help="Slurm time limit per cell, minutes")
    parser.add_argument("--gpus-per-job", type=int, default=0, help="Slurm GPUs per cell")
    parser.add_argument("--cpus-per-job", type=int, default=2, help="Slurm CPUs per cell")
    parser.add_argument("--ddp-procs", type=int, default=1,
                        help="train each cell with N DDP processes through torchrun (one GPU each; gloo on CPU)")


def run(args):
    from stale import api
    from stale.core.errors import StaleError
    from stale.experiments.spec import load_spec
    from stale.experiments.summary import format_results

    if args.spec == "list":
        if args.folder:
            raise StaleError(f"list: takes no folder (got {args.folder!r}); 'stale experiment summarize DIR' "
                             f"summarizes one")
        for name in api.list_experiments():
            print(name)
        return 0
    if args.spec == "summarize":
        if not args.folder:
            raise StaleError("summarize: give the experiment folder (stale experiment summarize DIR)")
        res = api.summarize_experiment(args.folder)
        print(format_results(load_spec(res["spec"]), res))
        return 0
    if not args.out:
        raise StaleError("give --out DIR for the experiment's cells and results")
    res = api.experiment(args.spec, args.out, splits=args.splits or None, seeds=args.seeds or None,
                         variants=args.variants, settings=args.settings, datasets=args.datasets,
                         overrides=args.overrides, jobs=args.jobs, launcher=args.launcher, partition=args.partition,
                         time=args.time, gpus_per_job=args.gpus_per_job, cpus_per_job=args.cpus_per_job,
                         ddp_procs=args.ddp_procs)
    print(format_results(load_spec(res["spec"]), res))
    print(f"results: {args.out}/results.json, results.md, results.png")
    if res["failed"]:
        raise StaleError(f"{len(res['failed'])} of {res['cells_expected']} cells failed (see {args.out}/results.md): "
                         f"first: {res['failed'][0]['key']}: {res['failed'][0]['error']}")
    return 0
