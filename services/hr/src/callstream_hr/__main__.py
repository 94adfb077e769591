from callstream_hr.entrypoints.app import main

main()
