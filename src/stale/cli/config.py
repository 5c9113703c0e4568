"""``stale config show CONFIG [--set ...]`` / ``stale config list``: resolved run configs."""

HELP = "print a run config fully resolved (bases merged, --set applied), or list the shipped ones"


def add_arguments(parser):
    sub = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    p = sub.add_parser("show", help="print the resolved config as YAML")
    p.add_argument("config", help="YAML config file or the name of a shipped config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    sub.add_parser("list", help="names of the configs shipped with stale")


def run(args):
    from stale.core.config import list_packaged_configs

    if args.config_command == "list":
        for name in list_packaged_configs():
            print(name)
        return 0
    import yaml

    from stale.core.config import to_dict
    from stale.pipeline.config import load_run_config

    cfg = load_run_config(args.config, args.overrides)
    print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
    return 0
