"""``convlens models``: the presets, named by architecture, and a Keras-like summary of any of them."""

from __future__ import annotations

import typer

from convlens.cli.options import DatasetOption, JsonOption, SetOption, overrides
from convlens.cli.tables import LABEL, NUMBER, WORDS, fitted_table
from convlens.display import model_label, out, print_json

app = typer.Typer(help="List and inspect model presets.", no_args_is_help=True)


@app.command("list")
def models_list(as_json: JsonOption = False) -> None:
    """The presets: architecture, Keras parameter total, and which reference write-ups each reproduces."""
    from convlens.models.registry import list_models
    models = list_models()
    if as_json:
        return print_json(models)
    rows = []
    for m in models:
        reproduces = [r["write_up"] + "".join(f" (--set {k}={v})" for k, v in r["overrides"].items())
                      for r in m["reproduces"]]
        rows.append([m["name"], ", ".join(m["aliases"]), m["description"], f"{m['params']['total']:,}",
                     "; ".join(reproduces) or "-"])
    out.print(fitted_table("Model presets (convlens models show NAME)",
                           [("name", LABEL), ("alias", LABEL), ("architecture", LABEL, "layers"),
                            ("params (Keras)", NUMBER, "params"),
                            ("reproduces write-up (../shared/seeds/)", LABEL, "write-up")], rows, out.width))
    out.print("Each write-up's notes: convlens models show NAME. Aliases name the same preset; runs record the full "
              "name.")


@app.command("show")
def models_show(name: str, set_: SetOption = None, dataset: DatasetOption = "fashion-mnist",
                as_json: JsonOption = False) -> None:
    """A Keras-like summary: per layer output shape, parameters, MACs, receptive field, jump."""
    from convlens.config import model_spec, train_config
    from convlens.models.network import Network
    from convlens.models.presets import PRESETS
    from convlens.models.registry import canonical_name, resolve_spec
    from convlens.models.summary import summarize
    config = train_config(name, dataset, set=overrides(set_))
    spec = model_spec(config)  # as train builds it (convlens.summary too)
    summary = summarize(Network(spec), canonical_name(name))
    if as_json:  # the overrides as given, as a run's config.json records them
        return print_json({**summary.to_dict(), "overrides": dict(config.overrides),
                           "spec": spec.model_dump(mode="json")})
    rows = summary.rows()
    # the preset's name alone would title a network it does not build (a 2-block 5x5 'cnn-32-64-128'); a plain
    # rich table cut MACs ('225,7…') and layer types ('BatchNorma…') at 60-80 columns
    kinds = {"Layer": LABEL, "Type": LABEL, "Output Shape": WORDS}
    out.print(fitted_table(f'Model: "{model_label(summary.name, config.overrides)}"  (shapes as Keras prints them: '
                           "batch, H, W, C; RF = receptive field in px)",
                           [(header, kinds.get(header, NUMBER)) for header in rows[0]],
                           [list(row.values()) for row in rows], out.width))
    out.print(" " + summary.totals().replace("\n", "\n "))
    preset = PRESETS[summary.name]  # its notes, when this is the preset as is or as a write-up's --set has it,
    # on the write-ups' dataset
    for reproduction in [r for r in preset.reproduces if dataset == "fashion-mnist"
                         and spec in (preset.spec, resolve_spec(preset.name, r.overrides))]:
        out.print(f" Reproduces {reproduction.describe()}")
