// latmix-engine: the LATMiX Studio engine on the command line (cli/engine_main.cpp); `latmix`, the
// launcher beside it (cli/launcher), execs it for every command that needs LibTorch.
#include "engine_main.h"

int main(int argc, char** argv) { return latmix::cli::engine_main(argc, argv); }
