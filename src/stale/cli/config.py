"""``stale config show CONFIG [--set ...]`` / ``stale config list``: resolved run configs."""

HELP = "print a run config fully resolved (bases merged, --set applied), or list the shipped ones"


def add_arguments(parser):
    sub = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    p = sub.add_parser("show", help="print the resolved config as YAML")
    p.add_argument("config", help="YAML config file or the name of a shipped config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    sub.add_parser("list", help="names of the configs shipped with stale")


def run(args):
    from stale.api import config, list_configs

    if args.config_command == "list":
        for name in list_configs():
            print(name)
        return 0
    import yaml

    print(yaml.safe_dump(config(args.config, args.overrides), sort_keys=False), end="")
    return 0
