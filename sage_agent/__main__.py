from sage_agent.cli import main

raise SystemExit(main())
