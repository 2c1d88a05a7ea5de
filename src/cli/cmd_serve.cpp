// `ballast serve`: placeholder until the HTTP server lands; runs the chat loop.
#include "cli/options.h"

namespace ballast::cli {
void add_serve(CLI::App& app, Options& o) { (void)app; (void)o; }
}  // namespace ballast::cli
