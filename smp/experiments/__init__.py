"""The runs that test the models: one module per chapter topic, mirroring :mod:`smp.models`.

Each module holds the seeded sweeps of one chapter and a ``write_tables`` that stores their results
through :mod:`smp.data` (the registry names the producer of every stored file).
"""
