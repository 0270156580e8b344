"""The demo adapter and the reference HIS: a small hospital schema of our own, a seeder that fills it with
synthetic encounters, and a mapping file read by the generic ``sql_mapping`` adapter."""
