"""The flagship notebook (notebooks/flagship.ipynb) runs top to bottom through nbclient, so it cannot rot:
any cell that raises (an API that changed, a figure that no longer draws, an assertion on the numbers) fails
this test with the cell and its error."""
import os
import pathlib
import sys

import nbclient
import nbformat

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "flagship.ipynb"


def test_flagship_notebook_executes(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # The kernel is this interpreter's (the test venv's ipykernel), with the same PYTHONPATH.
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    os.environ["ROPESCOPE_ROOT"] = str(ROOT)
    client = nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()
    images = sum(1 for cell in notebook.cells if cell.cell_type == "code"
                 for output in cell.get("outputs", []) if "image/png" in output.get("data", {}))
    assert images == 4, f"expected the 4 figures, got {images}"
    nbformat.write(notebook, tmp_path / "flagship.executed.ipynb")
