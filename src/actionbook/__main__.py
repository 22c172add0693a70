from actionbook.cli import main

raise SystemExit(main())
