from vae_lab.cli import main

main()
