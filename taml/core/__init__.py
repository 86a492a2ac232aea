"""The bottom layer: configuration schema and loading, storage, the data layout, the registry.

Everything else in the project imports from here; nothing here imports a step, the pipeline,
serving or the command line (the configuration schema uses ``model.spec``, a leaf).
"""
