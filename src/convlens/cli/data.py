"""``convlens data``: find, verify and describe the dataset."""

from __future__ import annotations

import typer
from rich.table import Table

from convlens.cli.options import DataDirOption, DatasetOption, JsonOption
from convlens.display import out, print_json

app = typer.Typer(help="Find, verify and describe the dataset.", no_args_is_help=True)


@app.command("info")
def data_info(data_dir: DataDirOption = None, dataset: DatasetOption = "fashion-mnist",
              as_json: JsonOption = False) -> None:
    """Where the data came from, sizes, class names and balance."""
    from convlens.data import load_named
    from convlens.data.dataset import data_checksums
    ds = load_named(dataset, data_dir)
    info = {**ds.describe(), "checksums_verified": bool(data_checksums(ds))}
    if as_json:
        return print_json(info)
    src = info["source"]
    # digits and folders have no published checksums, and CIFAR-10's is its archive's: checked for shape and labels
    checked = ("checksums verified" if info["checksums_verified"] else
               "read and checked (not verified against published checksums)")
    out.print(f"{dataset} from {src['directory']} ({src['origin']}), {checked}")
    out.print(f"train {info['train']['n']:,} x {info['train']['shape']}, test {info['test']['n']:,} x "
              f"{info['test']['shape']}, {info['dtype']}, pixels {info['pixel_range'][0]}..{info['pixel_range'][1]}")
    table = Table("class", "name", "train", "test", title="Class balance")
    for i, name in enumerate(info["class_names"]):
        table.add_row(str(i), name, f"{info['train_counts'][i]:,}", f"{info['test_counts'][i]:,}")
    out.print(table)


@app.command("fetch")
def data_fetch(data_dir: DataDirOption = None, dataset: DatasetOption = "fashion-mnist",
               as_json: JsonOption = False) -> None:
    """Make sure the dataset is available (download it if no local copy exists) and verify it."""
    from convlens.data import load_named
    from convlens.data.dataset import data_checksums
    ds = load_named(dataset, data_dir)
    if as_json:  # data info --json's keys and values (a folder's name as it resolves it), less the class lists
        info = ds.describe()
        return print_json({**{key: info[key] for key in ("dataset", "source", "train", "test")},
                           "checksums_verified": bool(data_checksums(ds))})
    checked = "verified" if data_checksums(ds) else "read (not verified against published checksums)"
    out.print(f"{dataset} ready: {ds.source.directory} ({ds.source.origin}), "
              f"{len(ds.train_labels):,} train + {len(ds.test_labels):,} test images {checked}")
