# Shared compile options for every LATMiX target.
add_library(latmix_options INTERFACE)
target_compile_options(latmix_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow=local -Wnon-virtual-dtor -Wcast-align
  -Wno-unused-parameter)
if(LATMIX_WERROR)
  target_compile_options(latmix_options INTERFACE -Werror)
endif()
if(LATMIX_SANITIZE)
  target_compile_options(latmix_options INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer
                                                  -fno-sanitize-recover=undefined)
  target_link_options(latmix_options INTERFACE -fsanitize=address,undefined)
endif()
