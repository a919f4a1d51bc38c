"""``convlens models``: the presets, named by architecture, and a Keras-like summary of any of them."""

from __future__ import annotations

import typer
from rich.table import Table

from convlens.cli.options import DatasetOption, JsonOption, SetOption, overrides
from convlens.display import out, print_json

app = typer.Typer(help="List and inspect model presets.", no_args_is_help=True)


@app.command("list")
def models_list(as_json: JsonOption = False) -> None:
    """The presets: architecture, Keras parameter total, and which reference write-ups each reproduces."""
    from convlens.models.registry import list_models
    models = list_models()
    if as_json:
        return print_json(models)
    table = Table("name", "alias", "architecture", "params (Keras)", "reproduces write-up (../shared/seeds/)",
                  title="Model presets (convlens models show NAME)")
    for m in models:
        reproduces = [r["write_up"] + "".join(f" (--set {k}={v})" for k, v in r["overrides"].items())
                      for r in m["reproduces"]]
        table.add_row(m["name"], ", ".join(m["aliases"]), m["description"], f"{m['params']['total']:,}",
                      "; ".join(reproduces) or "-")
    out.print(table)
    out.print("Each write-up's notes: convlens models show NAME. Aliases name the same preset; runs record the full name.")


@app.command("show")
def models_show(name: str, set_: SetOption = None, dataset: DatasetOption = "fashion-mnist",
                as_json: JsonOption = False) -> None:
    """A Keras-like summary: per layer output shape, parameters, MACs, receptive field, jump."""
    from convlens.data.catalog import dataset_info
    from convlens.models.network import Network
    from convlens.models.presets import PRESETS
    from convlens.models.registry import canonical_name, resolve_spec
    from convlens.models.summary import summarize
    info = dataset_info(dataset)
    spec = resolve_spec(name, {"in_channels": info.channels, "image_size": info.size,
                               "num_classes": len(info.class_names), **overrides(set_)})
    summary = summarize(Network(spec), canonical_name(name))
    if as_json:
        return print_json({**summary.to_dict(), "spec": spec.model_dump(mode="json")})
    rows = summary.rows()
    table = Table(*rows[0], title=f'Model: "{summary.name}"  (shapes as Keras prints them: batch, H, W, C; '
                                  "RF = receptive field in px)")
    for row in rows:
        table.add_row(*row.values())
    out.print(table)
    out.print(" " + summary.totals().replace("\n", "\n "))
    for reproduction in [] if set_ or dataset != "fashion-mnist" else PRESETS[summary.name].reproduces:
        out.print(f" Reproduces {reproduction.describe()}")
