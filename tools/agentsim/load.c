int sim_load_main(int argc, char **argv);
int sim_load_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return 2;
}
