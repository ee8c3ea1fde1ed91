"""python -m nncompress.cli"""

from nncompress.cli.app import main

main()
