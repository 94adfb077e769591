from callstream_hr.bootstrap import main

main()
