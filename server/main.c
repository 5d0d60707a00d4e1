int main(void) { return 0; } /* wired up once the stages land */
