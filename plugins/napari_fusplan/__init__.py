"""napari plugin for fusplan: plan a thalamotomy on a scan and watch the staged heating."""
