"""python -m nncompress"""

from nncompress.cli.app import main

main()
