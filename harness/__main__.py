from harness.demo import main

main()
