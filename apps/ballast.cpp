// ballast: thin main; commands live in src/cli/.
#include "cli/options.h"

int main(int argc, char** argv) { return ballast::cli::run(argc, argv); }
