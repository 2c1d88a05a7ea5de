// ballast: thin main; subcommands live in src/cli/.
int main() { return 0; }
