from httpd_operator.cli import main

raise SystemExit(main())
