import sys

from oci2bin.cli.main import main

sys.exit(main())
