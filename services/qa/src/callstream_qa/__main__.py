from callstream_qa.entrypoints.app import main

main()
