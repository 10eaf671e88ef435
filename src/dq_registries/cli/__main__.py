from dq_registries.cli import main

main()
